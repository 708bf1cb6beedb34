package fakeline

import (
	"fmt"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stepcast/stepcast/lineschema"
)

// LINE's document, its loading, tightening and the validation against it
// belong to package lineschema, which the fake shares with Stepcast's own
// checks of the messages it stores. What is here names its pieces for the
// fake.

// openapiFiles holds LINE's document and its licence, embedded by lineschema.
var openapiFiles = lineschema.Files()

const specPath = "openapi/messaging-api.yml"

// Recipient patterns, and the messages for IDs that do not match them.
const (
	chatIDPattern = lineschema.ChatIDPattern
	userIDPattern = lineschema.UserIDPattern
)

var patternMessages = map[string]string{
	chatIDPattern: lineschema.PatternMessage(chatIDPattern),
	userIDPattern: lineschema.PatternMessage(userIDPattern),
}

// tighten adds to a loaded document the limits LINE enforces that the
// document leaves out.
var tighten = lineschema.Tighten

// spec is LINE's document as lineschema loads and tightens it, with the
// discriminator mappings that lineschema resolves and follows. It is only
// read, so one copy serves every Server.
type spec struct {
	doc *openapi3.T
	// mappings maps each schema with a discriminator to the subtype
	// schemas of its values.
	mappings map[*openapi3.Schema]map[string]*openapi3.Schema
}

var loadSpec = sync.OnceValues(func() (*spec, error) {
	doc, err := lineschema.Doc()
	if err != nil {
		return nil, fmt.Errorf("fakeline: %w", err)
	}
	sp := &spec{doc: doc, mappings: map[*openapi3.Schema]map[string]*openapi3.Schema{}}
	for _, ref := range doc.Components.Schemas {
		if m := lineschema.Subtypes(ref.Value); m != nil {
			sp.mappings[ref.Value] = m
		}
	}
	return sp, nil
})

func componentSchema(doc *openapi3.T, name string) *openapi3.Schema {
	s := doc.Components.Schemas[name]
	if s == nil {
		return nil
	}
	return s.Value
}
