package lineschema

import (
	"errors"
	"fmt"
	"slices"

	"github.com/getkin/kin-openapi/openapi3"
)

// Patterns that Tighten puts on recipients, for LINE's IDs.
const (
	// ChatIDPattern matches a user, group or room ID, as a push is sent to.
	ChatIDPattern = `^[UCR][0-9a-f]{32}$`
	// UserIDPattern matches a user ID, as a multicast is sent to.
	UserIDPattern = `^U[0-9a-f]{32}$`

	httpsPattern = `^https://`
)

var patternMessages = map[string]string{
	ChatIDPattern: "must be a user, group or room ID (U, C or R followed by 32 lowercase hex digits)",
	UserIDPattern: "must be a user ID (U followed by 32 lowercase hex digits)",
	httpsPattern:  "must be an https URL",
}

// PatternMessage is the problem message for a string that does not match
// pattern, as in "must be a user ID (U followed by 32 lowercase hex digits)"
// for UserIDPattern.
func PatternMessage(pattern string) string {
	if m, ok := patternMessages[pattern]; ok {
		return m
	}
	return fmt.Sprintf("must match %q", pattern)
}

// Tighten writes into doc rules that LINE enforces but its OpenAPI document
// leaves out (limits from the Messaging API reference). Doc has them
// already; Tighten is for a document loaded some other way. Putting them in
// the schemas, rather than in code beside them, means one validator and one
// error format cover both. A rule that no longer finds its schema is an
// error naming that schema, so a newer document cannot silently drop it.
func Tighten(doc *openapi3.T) error {
	t := tightener{doc: doc}

	t.pattern("PushMessageRequest", "to", ChatIDPattern)
	if to := t.prop("MulticastRequest", "to"); to != nil && to.Items != nil && to.Items.Value != nil {
		to.Items.Value.Pattern = UserIDPattern
	} else {
		t.errs = append(t.errs, errors.New("MulticastRequest.to has no items schema"))
	}

	t.length("TextMessage", "text", 1, 5000)
	t.length("TextMessageV2", "text", 1, 5000)
	t.length("TemplateMessage", "altText", 1, 400)
	t.length("FlexMessage", "altText", 1, 1500)
	t.length("ImagemapMessage", "altText", 1, 1500)

	for _, m := range []struct{ schema, prop string }{
		{"ImageMessage", "originalContentUrl"},
		{"ImageMessage", "previewImageUrl"},
		{"VideoMessage", "originalContentUrl"},
		{"VideoMessage", "previewImageUrl"},
		{"AudioMessage", "originalContentUrl"},
		{"FlexImage", "url"},
	} {
		t.pattern(m.schema, m.prop, httpsPattern)
		t.length(m.schema, m.prop, 0, 2000)
	}

	t.require("Action", "type")
	t.require("MessageAction", "text")
	t.require("URIAction", "uri")
	t.require("PostbackAction", "data")
	t.require("DatetimePickerAction", "data", "mode")
	t.require("QuickReplyItem", "action")

	t.items("QuickReply", "items", 1, 13)
	t.items("ButtonsTemplate", "actions", 1, 4)
	t.items("ConfirmTemplate", "actions", 2, 2)
	t.items("CarouselTemplate", "columns", 1, 10)
	t.items("CarouselColumn", "actions", 1, 3)
	t.items("ImageCarouselTemplate", "columns", 1, 10)
	t.items("FlexCarousel", "contents", 1, 12)

	return errors.Join(t.errs...)
}

type tightener struct {
	doc  *openapi3.T
	errs []error
}

func (t *tightener) schema(name string) *openapi3.Schema {
	ref := t.doc.Components.Schemas[name]
	if ref == nil || ref.Value == nil {
		t.errs = append(t.errs, fmt.Errorf("schema %s not found", name))
		return nil
	}
	return ref.Value
}

// prop finds a property declared on the schema itself or in one of its
// inline allOf parts, which is where LINE's subtypes declare theirs.
func (t *tightener) prop(schemaName, prop string) *openapi3.Schema {
	s := t.schema(schemaName)
	if s == nil {
		return nil
	}
	if p := s.Properties[prop]; p != nil && p.Value != nil {
		return p.Value
	}
	for _, part := range s.AllOf {
		if part.Ref != "" || part.Value == nil {
			continue
		}
		if p := part.Value.Properties[prop]; p != nil && p.Value != nil {
			return p.Value
		}
	}
	t.errs = append(t.errs, fmt.Errorf("property %s.%s not found", schemaName, prop))
	return nil
}

func (t *tightener) pattern(schemaName, prop, pattern string) {
	if p := t.prop(schemaName, prop); p != nil {
		p.Pattern = pattern
	}
}

func (t *tightener) length(schemaName, prop string, minLen, maxLen uint64) {
	if p := t.prop(schemaName, prop); p != nil {
		p.MinLength = minLen
		p.MaxLength = &maxLen
	}
}

func (t *tightener) items(schemaName, prop string, minItems, maxItems uint64) {
	if p := t.prop(schemaName, prop); p != nil {
		p.MinItems = minItems
		p.MaxItems = &maxItems
	}
}

func (t *tightener) require(schemaName string, props ...string) {
	s := t.schema(schemaName)
	if s == nil {
		return
	}
	for _, p := range props {
		if !slices.Contains(s.Required, p) {
			s.Required = append(s.Required, p)
		}
	}
}
