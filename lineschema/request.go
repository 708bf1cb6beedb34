package lineschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// FindRoute finds the operation that LINE's document gives for r's method
// and path, whatever r's host. For a request the document does not describe
// the error is routers.ErrPathNotFound or routers.ErrMethodNotAllowed.
func FindRoute(r *http.Request) (*routers.Route, map[string]string, error) {
	s, err := load()
	if err != nil {
		return nil, nil, err
	}
	return s.router.FindRoute(r)
}

// ValidateRequest checks a request as LINE does before acting on it: its
// parameters and headers, and its body against the operation's schema,
// subtypes included. route and params are what FindRoute gave for r; body
// is r's body, already read, and r.Body is not used. A JSON body's nulls
// count as absent, as LINE takes them. Authentication is left to the caller,
// and so is the body's content type: the body is taken for JSON.
//
// messages are about the request as a whole, in LINE's words: "The request
// body is required", "The value for the 'X-Line-Retry-Key' header is
// invalid", or a body that is not JSON. problems are about the body, with
// paths from its root such as "messages[0].text" (the empty path for the
// body itself), sorted by path. Both are nil when LINE would accept the
// request.
func ValidateRequest(r *http.Request, route *routers.Route, params map[string]string, body []byte) (messages []string, problems []Problem) {
	s, err := load()
	if err != nil {
		return []string{err.Error()}, nil
	}

	var value any
	if len(bytes.TrimSpace(body)) > 0 && route.Operation.RequestBody != nil {
		if err := json.Unmarshal(body, &value); err != nil {
			return []string{jsonSyntaxMessage(body, err)}, nil
		}
		// LINE's own SDK sends unset optional fields as null (for example
		// "customAggregationUnits":null) and LINE takes null for absent; the
		// document does not mark them nullable, so nulls go before validation.
		value = stripNulls(value)
		if body, err = json.Marshal(value); err != nil {
			return []string{err.Error()}, nil
		}
	}

	vr := r.Clone(r.Context())
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
			// The body must stay as sent, not with defaults filled in.
			SkipSettingDefaults:     true,
			AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
			SchemaValidationOptions: s.opts,
		},
	})
	if err != nil {
		c.request(value, err)
	}
	if value != nil && route.Operation.RequestBody != nil {
		if mt := route.Operation.RequestBody.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil {
			s.walk(c, mt.Schema.Value, value, "", map[*openapi3.Schema]bool{})
		}
	}
	return c.top, c.problems()
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
