// Package lineschema knows what the LINE Messaging API accepts. Its source
// is LINE's own OpenAPI document, embedded from openapi/ (Apache License 2.0,
// whose text is embedded beside it), plus limits LINE enforces that the
// document leaves out (see rules.go).
//
// kin-openapi validates values against the document, but it uses a
// discriminator only to choose among oneOf/anyOf, and LINE's document has
// none: a text message is an allOf subtype of Message. So wherever a value
// meets a schema with a discriminator (a message, an action, a template, a
// flex component...), this package also validates it against the subtype the
// discriminator names. Without that, a text message without text would pass
// as a plain Message.
//
// ValidateMessages and ValidateMessage check message objects, for whoever
// stores messages to send later; FindRoute and ValidateRequest check whole
// requests, for a server that answers as LINE does.
//
// Every problem found has a path relative to the value validated: a
// property is joined with a dot and an array index is written in brackets,
// as LINE writes the property of an error detail. So ValidateMessages gives
// "[1].template.actions[2].uri", ValidateMessage "quickReply.items[0].action.uri"
// and ValidateRequest "messages[0].text". A problem with the value as a whole
// has the empty path.
//
// Limits:
//   - LINE checks more than is written down here: flex nesting rules, image
//     sizes, whether URLs answer, lengths counted in UTF-16 units. A value can
//     pass here that LINE would refuse, not the other way round.
//   - Values are checked as given. A placeholder such as {{displayName}} is
//     text like any other, so a text that fits may not fit once it is filled in.
package lineschema

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// The LICENSE is embedded with the document so that the Apache 2.0 notice
// travels with every binary that carries LINE's text.
//
//go:embed openapi/messaging-api.yml openapi/LICENSE
var files embed.FS

const docPath = "openapi/messaging-api.yml"

// Files returns the embedded files: LINE's document,
// openapi/messaging-api.yml, and its licence, openapi/LICENSE.
func Files() embed.FS {
	return files
}

// Problem is one reason LINE would reject a value.
type Problem struct {
	// Path locates the value at fault, relative to what was validated:
	// "[0].text", "[1].template.actions[2].uri", or "" for the value itself.
	Path string `json:"path"`
	// Message says what is wrong, mostly in LINE's words: "must be
	// specified", "Size must be between 1 and 5", "must be an https URL".
	Message string `json:"message"`
}

// String gives the problem as "path: message".
func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// schemas is LINE's document, loaded, tightened and indexed for validation.
// After loading it is only read, so one copy serves every caller.
type schemas struct {
	doc *openapi3.T
	// router finds operations on any host; it is built on a copy of doc
	// whose servers are rewritten, so doc keeps LINE's own.
	router routers.Router
	// mappings resolves each discriminator's mapping to schemas, keyed by the
	// schema that declares the discriminator. kin-openapi leaves references
	// within the root document unresolved there.
	mappings map[*openapi3.Schema]map[string]*openapi3.Schema
	// opts are given to every validation: they hold the string formats
	// the document uses, without touching kin-openapi's global registry.
	opts []openapi3.SchemaValidationOption
	// messages is the push request's messages array; message is Message.
	messages, message *openapi3.Schema
}

// load is shared because loading the 180 KB document costs tens of
// milliseconds.
var load = sync.OnceValues(func() (*schemas, error) {
	data, err := files.ReadFile(docPath)
	if err != nil {
		return nil, fmt.Errorf("lineschema: read embedded document: %w", err)
	}
	return newSchemas(data)
})

// Doc returns LINE's OpenAPI document, loaded and tightened with the rules
// in rules.go. It is loaded once and shared: callers must not change it.
// It fails only if the embedded document cannot be loaded, which the
// package's tests rule out.
func Doc() (*openapi3.T, error) {
	s, err := load()
	if err != nil {
		return nil, err
	}
	return s.doc, nil
}

// Subtypes returns the schemas that base's discriminator maps each value
// to, such as "text" to TextMessage for Message, resolved within Doc. It
// returns nil if base is not a schema of Doc with a discriminator mapping.
// The map is the caller's; the schemas are shared and must not be changed.
func Subtypes(base *openapi3.Schema) map[string]*openapi3.Schema {
	s, err := load()
	if err != nil {
		return nil
	}
	return maps.Clone(s.mappings[base])
}

// ValidateMessages checks message objects the way LINE's push endpoint
// checks its messages array: 1 to 5 items, each a valid Message subtype
// (text, sticker, image, video, audio, location, imagemap, template, flex,
// textV2...), including nested actions, quick replies, templates and flex
// components. Nulls count as absent, as LINE takes them. Paths start with
// the message's index: "[0].text"; a problem with the number of messages has
// the empty path. It returns nil when LINE would accept the messages;
// problems are sorted by path.
func ValidateMessages(msgs []json.RawMessage) []Problem {
	s, err := load()
	if err != nil {
		return []Problem{{Message: err.Error()}}
	}
	c := newCollector()
	arr := s.messages
	if n := uint64(len(msgs)); n < arr.MinItems || (arr.MaxItems != nil && n > *arr.MaxItems) {
		c.detail("", rangeMessage("Size", arr.MinItems, arr.MaxItems))
	}
	for i, m := range msgs {
		s.validateRaw(c, arr.Items.Value, m, fmt.Sprintf("[%d]", i))
	}
	return c.problems()
}

// ValidateMessage checks one message object as ValidateMessages checks each
// of its messages. Paths are relative to the message: "text" or
// "quickReply.items[0].action.uri".
func ValidateMessage(msg json.RawMessage) []Problem {
	s, err := load()
	if err != nil {
		return []Problem{{Message: err.Error()}}
	}
	c := newCollector()
	s.validateRaw(c, s.message, msg, "")
	return c.problems()
}

func newSchemas(data []byte) (*schemas, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("lineschema: load OpenAPI document: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("lineschema: OpenAPI document is invalid: %w", err)
	}
	if err := Tighten(doc); err != nil {
		return nil, fmt.Errorf("lineschema: tighten OpenAPI document: %w", err)
	}
	router, err := anyHostRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("lineschema: build router: %w", err)
	}

	s := &schemas{
		doc:      doc,
		router:   router,
		mappings: map[*openapi3.Schema]map[string]*openapi3.Schema{},
		opts: []openapi3.SchemaValidationOption{
			openapi3.WithStringFormatValidator("uuid", openapi3.NewCallbackValidator(checkUUID)),
			openapi3.WithStringFormatValidator("uri", openapi3.NewCallbackValidator(checkURI)),
		},
		message: componentSchema(doc, "Message"),
	}
	for name, ref := range doc.Components.Schemas {
		base := ref.Value
		if base == nil || base.Discriminator == nil || len(base.Discriminator.Mapping) == 0 {
			continue
		}
		m := map[string]*openapi3.Schema{}
		for value, target := range base.Discriminator.Mapping {
			t := componentSchema(doc, target.Ref)
			if t == nil {
				return nil, fmt.Errorf("lineschema: %s: discriminator value %q maps to unknown schema %q", name, value, target.Ref)
			}
			m[value] = t
		}
		s.mappings[base] = m
	}

	if push := componentSchema(doc, "PushMessageRequest"); push != nil {
		if p := push.Properties["messages"]; p != nil && p.Value != nil && p.Value.Items != nil && p.Value.Items.Value != nil {
			s.messages = p.Value
		}
	}
	if s.messages == nil || s.message == nil || s.messages.Items.Value != s.message {
		return nil, errors.New("lineschema: PushMessageRequest.messages is not an array of Message")
	}
	return s, nil
}

// anyHostRouter routes requests for doc's paths whatever their host: the
// document names api.line.me (and api-data.line.me for some paths), and a
// fake answers wherever it is put. It rewrites the servers of a copy, so doc
// keeps LINE's.
func anyHostRouter(doc *openapi3.T) (routers.Router, error) {
	d := *doc
	d.Servers = openapi3.Servers{{URL: "/"}}
	d.Paths = openapi3.NewPaths()
	for path, item := range doc.Paths.Map() {
		it := *item
		it.Servers = nil
		d.Paths.Set(path, &it)
	}
	return gorillamux.NewRouter(&d)
}

func componentSchema(doc *openapi3.T, ref string) *openapi3.Schema {
	name, ok := strings.CutPrefix(ref, "#/components/schemas/")
	if !ok {
		// A bare name is allowed in a mapping too.
		name = ref
	}
	s := doc.Components.Schemas[name]
	if s == nil {
		return nil
	}
	return s.Value
}

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// checkUUID accepts any version: LINE asks for a UUID "generated by any method".
func checkUUID(s string) error {
	if !uuidPattern.MatchString(s) {
		return fmt.Errorf("not a UUID")
	}
	return nil
}

// checkURI wants an absolute URI; schemes such as tel: and line: are fine
// for actions, and the stricter https rule for media lives in Tighten.
func checkURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || (u.Host == "" && u.Opaque == "" && u.Path == "") {
		return fmt.Errorf("not an absolute URI")
	}
	return nil
}
