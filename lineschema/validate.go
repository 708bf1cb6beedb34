package lineschema

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// validateRaw checks the JSON raw against schema, as a value found at path.
func (s *schemas) validateRaw(c *collector, schema *openapi3.Schema, raw json.RawMessage, path string) {
	var value any
	if err := json.Unmarshal(raw, &value); err != nil {
		c.detail(path, "must be valid JSON: "+err.Error())
		return
	}
	// LINE takes null for absent; the document does not mark fields nullable.
	value = stripNulls(value)
	if err := schema.VisitJSON(value, s.visitOptions()...); err != nil {
		c.schema(path, value, err)
	}
	s.walk(c, schema, value, path, map[*openapi3.Schema]bool{})
}

// visitOptions are those a request body is validated with: every error, as
// a request, with the document's formats, and no defaults written.
func (s *schemas) visitOptions() []openapi3.SchemaValidationOption {
	return append([]openapi3.SchemaValidationOption{openapi3.MultiErrors(), openapi3.VisitAsRequest()}, s.opts...)
}

// walk follows value down schema s and, wherever a schema on the way has
// a discriminator, validates the value against the schema its mapping
// names. kin-openapi only uses discriminators to pick among oneOf/anyOf, and
// LINE's document has none: a message is an allOf subtype of Message, so
// without this a text message without text would pass as a plain Message.
//
// seen holds the schemas already applied to this value; it breaks the cycle
// of a subtype whose allOf names its own base.
func (s *schemas) walk(c *collector, schema *openapi3.Schema, value any, path string, seen map[*openapi3.Schema]bool) {
	if schema == nil || seen[schema] {
		return
	}
	seen[schema] = true
	if m := s.mappings[schema]; m != nil {
		s.dispatch(c, schema, m, value, path, seen)
	}
	for _, part := range schema.AllOf {
		s.walk(c, part.Value, value, path, seen)
	}
	switch v := value.(type) {
	case map[string]any:
		for _, k := range sortedKeys(v) {
			child := joinProperty(path, k)
			if p := schema.Properties[k]; p != nil {
				s.walk(c, p.Value, v[k], child, map[*openapi3.Schema]bool{})
			} else if ap := schema.AdditionalProperties.Schema; ap != nil {
				s.walk(c, ap.Value, v[k], child, map[*openapi3.Schema]bool{})
			}
		}
	case []any:
		if schema.Items != nil {
			for i, x := range v {
				s.walk(c, schema.Items.Value, x, fmt.Sprintf("%s[%d]", path, i), map[*openapi3.Schema]bool{})
			}
		}
	}
}

func (s *schemas) dispatch(c *collector, base *openapi3.Schema, mapping map[string]*openapi3.Schema, value any, path string, seen map[*openapi3.Schema]bool) {
	obj, ok := value.(map[string]any)
	if !ok {
		return
	}
	name := base.Discriminator.PropertyName
	typ, ok := obj[name].(string)
	if !ok {
		// Missing or not a string: the base schema's own rules say so.
		return
	}
	target, ok := mapping[typ]
	if !ok {
		c.detail(joinProperty(path, name), "must be one of the following values: ["+strings.Join(sortedKeys(mapping), ", ")+"]")
		return
	}
	// A property typed as a subtype (a bubble's body is a FlexBox) reaches
	// the base through the subtype's allOf, with the subtype already seen.
	for v, sub := range mapping {
		if seen[sub] && sub != target {
			c.detail(joinProperty(path, name), fmt.Sprintf("must be %q", v))
			return
		}
	}
	if seen[target] {
		return
	}
	if err := target.VisitJSON(value, s.visitOptions()...); err != nil {
		c.schema(path, value, err)
	}
	s.walk(c, target, value, path, seen)
}

// collector gathers problems in LINE's words, once each.
type collector struct {
	top     []string // about a request as a whole, a header or a parameter
	details []Problem
	seen    map[Problem]bool
}

func newCollector() *collector {
	return &collector{seen: map[Problem]bool{}}
}

func (c *collector) detail(path, message string) {
	p := Problem{Path: path, Message: message}
	if c.seen[p] {
		return
	}
	c.seen[p] = true
	c.details = append(c.details, p)
}

func (c *collector) addTop(message string) {
	if !slices.Contains(c.top, message) {
		c.top = append(c.top, message)
	}
}

// problems returns the problems found, sorted by path.
func (c *collector) problems() []Problem {
	sort.SliceStable(c.details, func(i, j int) bool { return c.details[i].Path < c.details[j].Path })
	return c.details
}

// schema records the schema errors in err, whose paths are relative to
// value, found at path prefix.
func (c *collector) schema(prefix string, value any, err error) {
	switch e := err.(type) {
	case openapi3.MultiError:
		for _, x := range e {
			c.schema(prefix, value, x)
		}
		return
	case *openapi3.SchemaError:
		// kin-openapi reports a failed allOf as one error wrapping the real
		// ones, which already carry their full paths.
		if e.SchemaField == "allOf" && e.Origin != nil {
			var inner openapi3.MultiError
			if errors.As(e.Origin, &inner) && len(inner) > 0 {
				c.schema(prefix, value, inner)
				return
			}
		}
		c.detail(propertyPath(prefix, value, e.JSONPointer()), describe(e))
		return
	}
	c.detail(prefix, err.Error())
}

// describe words a schema error the way LINE does where LINE's wording is
// known, and plainly otherwise.
func describe(e *openapi3.SchemaError) string {
	s := e.Schema
	switch e.SchemaField {
	case "required":
		return "must be specified"
	case "type":
		return strings.TrimPrefix(e.Reason, "value ")
	case "minItems", "maxItems":
		return rangeMessage("Size", s.MinItems, s.MaxItems)
	case "minLength", "maxLength":
		return rangeMessage("Length", s.MinLength, s.MaxLength)
	case "enum":
		vals := make([]string, len(s.Enum))
		for i, v := range s.Enum {
			vals[i] = fmt.Sprint(v)
		}
		return "must be one of the following values: [" + strings.Join(vals, ", ") + "]"
	case "pattern":
		return PatternMessage(s.Pattern)
	case "format":
		return "must be a valid " + s.Format
	}
	if e.Reason != "" {
		return e.Reason
	}
	return "is invalid"
}

func rangeMessage(what string, lo uint64, hi *uint64) string {
	if hi == nil {
		return fmt.Sprintf("%s must be at least %d", what, lo)
	}
	return fmt.Sprintf("%s must be between %d and %d", what, lo, *hi)
}

// propertyPath turns a JSON pointer relative to value into LINE's property
// notation, messages[0].text, appended to prefix.
func propertyPath(prefix string, value any, pointer []string) string {
	path := prefix
	cur := value
	for _, seg := range pointer {
		switch v := cur.(type) {
		case []any:
			path += "[" + seg + "]"
			var i int
			if _, err := fmt.Sscan(seg, &i); err == nil && i >= 0 && i < len(v) {
				cur = v[i]
			} else {
				cur = nil
			}
		case map[string]any:
			path = joinProperty(path, seg)
			cur = v[seg]
		default:
			path = joinProperty(path, seg)
			cur = nil
		}
	}
	return path
}

func joinProperty(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// stripNulls removes the object members that are null, at any depth, in
// place, and returns v.
func stripNulls(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if x == nil {
				delete(v, k)
				continue
			}
			v[k] = stripNulls(x)
		}
	case []any:
		for i, x := range v {
			v[i] = stripNulls(x)
		}
	}
	return v
}
