package apiserver

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/models"
)

// decode reads a JSON body into v, refusing unknown fields so that a typo
// in a field name is an error rather than silently ignored.
func decode(c *gin.Context, v any) error {
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return stepcast.Errorf(stepcast.ETOOLARGE, "request body is over %d bytes", tooBig.Limit)
		case errors.Is(err, io.EOF):
			return stepcast.Errorf(stepcast.EINVALID, "request body is empty; a JSON object is expected")
		default:
			return stepcast.Errorf(stepcast.EINVALID, "request body is not valid JSON: %v", err)
		}
	}
	return nil
}

// idParam reads a numeric path parameter.
func idParam(c *gin.Context, name, what string) (uint, error) {
	v, err := strconv.ParseUint(c.Param(name), 10, 64)
	if err != nil || v == 0 {
		return 0, stepcast.Errorf(stepcast.ENOTFOUND, "%s %q not found", what, c.Param(name))
	}
	return uint(v), nil
}

// optionalID reads a numeric query parameter; absent is 0.
func optionalID(c *gin.Context, name string) (uint, error) {
	s := c.Query(name)
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, stepcast.Errorf(stepcast.EINVALID, "query parameter %s must be a number, not %q", name, s)
	}
	return uint(v), nil
}

// page reads limit and offset.
func page(c *gin.Context) (models.Page, error) {
	var p models.Page
	for name, dst := range map[string]*int{"limit": &p.Limit, "offset": &p.Offset} {
		if s := c.Query(name); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 0 {
				return p, stepcast.Errorf(stepcast.EINVALID, "query parameter %s must be a non-negative number, not %q", name, s)
			}
			*dst = v
		}
	}
	if p.Limit > 500 {
		return p, stepcast.Errorf(stepcast.EINVALID, "limit is at most 500")
	}
	return p, nil
}

// List is the JSON of every list answer.
type List[T any] struct {
	Items []T `json:"items"`
}

func listOf[R, T any](rows []R, conv func(*R) T) List[T] {
	items := make([]T, len(rows))
	for i := range rows {
		items[i] = conv(&rows[i])
	}
	return List[T]{Items: items}
}

// userIDPattern is the shape of a LINE user ID.
var userIDPattern = regexp.MustCompile(`^U[0-9a-f]{32}$`)
