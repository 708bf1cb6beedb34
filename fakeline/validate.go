package fakeline

import (
	"bytes"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/stepcast/stepcast/lineschema"
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
// gives for its method and path, with lineschema. body is the request body,
// already read. It returns nil when LINE would accept the request.
func (sp *spec) check(r *http.Request, body []byte) *apiError {
	route, params, err := lineschema.FindRoute(r)
	if err != nil {
		return newAPIError(http.StatusNotFound, "Not found")
	}
	if len(bytes.TrimSpace(body)) > 0 && route.Operation.RequestBody != nil {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
			return newAPIError(http.StatusUnsupportedMediaType, "A content type not supported by the API is requested")
		}
	}

	vr := r.Clone(r.Context())
	// The SDK always sends the header, empty when the caller gave no key,
	// and LINE treats an empty key as none.
	if vr.Header.Get(retryKeyHeader) == "" {
		vr.Header.Del(retryKeyHeader)
	}
	messages, problems := lineschema.ValidateRequest(vr, route, params, body)
	return requestError(messages, problems)
}

// requestError is LINE's 400 answer to what ValidateRequest found, or nil.
func requestError(messages []string, problems []lineschema.Problem) *apiError {
	if len(messages) == 0 && len(problems) == 0 {
		return nil
	}
	var details []errorDetail
	for _, p := range problems {
		details = append(details, errorDetail{Message: p.Message, Property: p.Path})
	}
	msg := strings.Join(messages, "; ")
	if msg == "" {
		msg = fmt.Sprintf("The request body has %d error(s)", len(details))
	}
	return &apiError{status: http.StatusBadRequest, body: errorResponse{Message: msg, Details: details}}
}
