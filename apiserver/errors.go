package apiserver

import (
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/stepcast/stepcast"
)

// statusOf is the one table from error codes to HTTP statuses.
var statusOf = map[string]int{
	stepcast.EINVALID:      http.StatusBadRequest,
	stepcast.ENOTFOUND:     http.StatusNotFound,
	stepcast.ECONFLICT:     http.StatusConflict,
	stepcast.EUNAUTHORIZED: http.StatusUnauthorized,
	stepcast.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	stepcast.EUNAVAILABLE:  http.StatusServiceUnavailable,
	stepcast.EINTERNAL:     http.StatusInternalServerError,
}

// ErrorBody is the JSON of every error answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong; Problems lists each problem of an
// invalid document by its path.
type ErrorDetail struct {
	Code     string             `json:"code"`
	Message  string             `json:"message"`
	Problems []stepcast.Problem `json:"problems,omitempty"`
}

// fail answers with err's status and message. Internal errors are logged
// and shown only as "internal error".
func (s *Server) fail(c *gin.Context, err error) {
	code := stepcast.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	body := ErrorBody{Error: ErrorDetail{Code: code, Message: stepcast.ErrorMessage(err)}}
	if e, ok := err.(*stepcast.Error); ok {
		body.Error.Problems = e.Problems
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	s.log.Log(c.Request.Context(), level, "request failed", "method", c.Request.Method, "path", c.FullPath(), "status", status, "error", err)
	c.AbortWithStatusJSON(status, body)
}
