package fakeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
)

// errorResponse is LINE's ErrorResponse schema.
type errorResponse struct {
	Message      string        `json:"message"`
	Details      []errorDetail `json:"details,omitempty"`
	SentMessages []sentMessage `json:"sentMessages,omitempty"`
}

type errorDetail struct {
	Message  string `json:"message,omitempty"`
	Property string `json:"property,omitempty"`
}

// apiError is an answer LINE would give instead of doing what was asked.
type apiError struct {
	status int
	body   errorResponse
}

func newAPIError(status int, message string) *apiError {
	return &apiError{status: status, body: errorResponse{Message: message}}
}

// check validates a request against the operation that LINE's document
// gives for its method and path. body is the request body, already read.
// It returns nil when LINE would accept the request.
func (sp *spec) check(r *http.Request, body []byte) *apiError {
	route, params, err := sp.router.FindRoute(r)
	if err != nil {
		return newAPIError(http.StatusNotFound, "Not found")
	}

	var value any
	hasBody := len(bytes.TrimSpace(body)) > 0
	if hasBody && route.Operation.RequestBody != nil {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
			return newAPIError(http.StatusUnsupportedMediaType, "A content type not supported by the API is requested")
		}
		if err := json.Unmarshal(body, &value); err != nil {
			return newAPIError(http.StatusBadRequest, jsonSyntaxMessage(body, err))
		}
		// LINE's own SDK sends unset optional fields as null (for example
		// "customAggregationUnits":null) and LINE takes null for absent; the
		// document does not mark them nullable, so nulls go before validation.
		value = stripNulls(value)
		if body, err = json.Marshal(value); err != nil {
			return newAPIError(http.StatusBadRequest, err.Error())
		}
	}

	vr := r.Clone(r.Context())
	// The SDK always sends the header, empty when the caller gave no key,
	// and LINE treats an empty key as none.
	if vr.Header.Get(retryKeyHeader) == "" {
		vr.Header.Del(retryKeyHeader)
	}
	vr.Body = io.NopCloser(bytes.NewReader(body))
	vr.ContentLength = int64(len(body))
	vr.GetBody = nil

	c := newCollector()
	err = openapi3filter.ValidateRequest(r.Context(), &openapi3filter.RequestValidationInput{
		Request:    vr,
		PathParams: params,
		Route:      route,
		Options: &openapi3filter.Options{
			MultiError: true,
			// The body must be recorded as sent, not with defaults filled in.
			SkipSettingDefaults: true,
			// Authentication is checked before validation, in LINE's words.
			AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
			SchemaValidationOptions: sp.opts,
		},
	})
	if err != nil {
		c.request(value, err)
	}
	if value != nil && route.Operation.RequestBody != nil {
		if mt := route.Operation.RequestBody.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil {
			sp.walk(c, mt.Schema.Value, value, "", map[*openapi3.Schema]bool{})
		}
	}
	return c.result()
}

// walk follows value down schema s and, wherever a schema on the way has
// a discriminator, validates the value against the schema its mapping
// names. kin-openapi only uses discriminators to pick among oneOf/anyOf, and
// LINE's document has none: a message is an allOf subtype of Message, so
// without this a text message without text would pass as a plain Message.
//
// seen holds the schemas already applied to this value; it breaks the cycle
// of a subtype whose allOf names its own base.
func (sp *spec) walk(c *collector, s *openapi3.Schema, value any, path string, seen map[*openapi3.Schema]bool) {
	if s == nil || seen[s] {
		return
	}
	seen[s] = true
	if m := sp.mappings[s]; m != nil {
		sp.dispatch(c, s, m, value, path, seen)
	}
	for _, part := range s.AllOf {
		sp.walk(c, part.Value, value, path, seen)
	}
	switch v := value.(type) {
	case map[string]any:
		for _, k := range sortedKeys(v) {
			child := joinProperty(path, k)
			if p := s.Properties[k]; p != nil {
				sp.walk(c, p.Value, v[k], child, map[*openapi3.Schema]bool{})
			} else if ap := s.AdditionalProperties.Schema; ap != nil {
				sp.walk(c, ap.Value, v[k], child, map[*openapi3.Schema]bool{})
			}
		}
	case []any:
		if s.Items != nil {
			for i, x := range v {
				sp.walk(c, s.Items.Value, x, fmt.Sprintf("%s[%d]", path, i), map[*openapi3.Schema]bool{})
			}
		}
	}
}

func (sp *spec) dispatch(c *collector, base *openapi3.Schema, mapping map[string]*openapi3.Schema, value any, path string, seen map[*openapi3.Schema]bool) {
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
	opts := append([]openapi3.SchemaValidationOption{openapi3.MultiErrors(), openapi3.VisitAsRequest()}, sp.opts...)
	if err := target.VisitJSON(value, opts...); err != nil {
		c.schema(path, value, err)
	}
	sp.walk(c, target, value, path, seen)
}

// collector gathers problems in LINE's words, once each.
type collector struct {
	top     []string // about the request as a whole, a header or a parameter
	details []errorDetail
	seen    map[errorDetail]bool
}

func newCollector() *collector {
	return &collector{seen: map[errorDetail]bool{}}
}

func (c *collector) detail(property, message string) {
	d := errorDetail{Message: message, Property: property}
	if c.seen[d] {
		return
	}
	c.seen[d] = true
	c.details = append(c.details, d)
}

func (c *collector) addTop(message string) {
	if !slices.Contains(c.top, message) {
		c.top = append(c.top, message)
	}
}

// request sorts out an error of openapi3filter.ValidateRequest; body is the
// decoded request body, which gives array indices their brackets.
func (c *collector) request(body any, err error) {
	if me, ok := err.(openapi3.MultiError); ok {
		for _, e := range me {
			c.request(body, e)
		}
		return
	}
	var re *openapi3filter.RequestError
	if !errors.As(err, &re) {
		var se *openapi3filter.SecurityRequirementsError
		if errors.As(err, &se) {
			return
		}
		c.addTop(err.Error())
		return
	}
	switch {
	case re.Parameter != nil:
		kind := "parameter"
		if re.Parameter.In == openapi3.ParameterInHeader {
			kind = "header"
		}
		c.addTop(fmt.Sprintf("The value for the '%s' %s is invalid", re.Parameter.Name, kind))
	case errors.Is(re.Err, openapi3filter.ErrInvalidRequired):
		c.addTop("The request body is required")
	case re.Err == nil:
		c.addTop(re.Reason)
	default:
		c.schema("", body, re.Err)
	}
}

// schema records the schema errors in err, whose paths are relative to
// value, found at property path prefix.
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

func (c *collector) result() *apiError {
	if len(c.top) == 0 && len(c.details) == 0 {
		return nil
	}
	sort.SliceStable(c.details, func(i, j int) bool { return c.details[i].Property < c.details[j].Property })
	msg := strings.Join(c.top, "; ")
	if msg == "" {
		msg = fmt.Sprintf("The request body has %d error(s)", len(c.details))
	}
	return &apiError{status: http.StatusBadRequest, body: errorResponse{Message: msg, Details: c.details}}
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
		if m, ok := patternMessages[s.Pattern]; ok {
			return m
		}
		return fmt.Sprintf("must match %q", s.Pattern)
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

// jsonSyntaxMessage is LINE's answer to a body that is not JSON.
func jsonSyntaxMessage(body []byte, err error) string {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return "The request body could not be parsed as JSON"
	}
	line, col := 1, 1
	for _, b := range body[:min(int(se.Offset), len(body))] {
		if b == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("The request body could not be parsed as JSON (line: %d, column: %d)", line, col)
}
