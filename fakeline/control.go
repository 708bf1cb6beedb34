package fakeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

// The /fake/ endpoints expose the Go controls to other processes. They
// answer in LINE's error shape too, so one client can read both.

func (s *Server) getPushes(c *gin.Context) {
	if to, ok := c.GetQuery("to"); ok {
		c.JSON(http.StatusOK, s.PushesTo(to))
		return
	}
	c.JSON(http.StatusOK, s.Pushes())
}

func (s *Server) deletePushes(c *gin.Context) {
	s.Reset()
	c.Status(http.StatusNoContent)
}

// faultRequest is Fault as JSON. delay is a Go duration string ("2s",
// "150ms") or a number of milliseconds.
type faultRequest struct {
	Status   int             `json:"status"`
	Count    int             `json:"count"`
	Delay    json.RawMessage `json:"delay"`
	Message  string          `json:"message"`
	Accepted bool            `json:"accepted"`
}

func (s *Server) postFault(c *gin.Context) {
	var req faultRequest
	if !decodeControl(c, &req) {
		return
	}
	f, err := req.fault()
	if err != nil {
		abortWith(c, newAPIError(http.StatusBadRequest, err.Error()))
		return
	}
	s.InjectFault(f)
	c.Status(http.StatusNoContent)
}

func (r faultRequest) fault() (Fault, error) {
	delay, err := parseDelay(r.Delay)
	if err != nil {
		return Fault{}, err
	}
	switch {
	case r.Status != 0 && (r.Status < 400 || r.Status > 599):
		return Fault{}, fmt.Errorf("status must be 0 or an error status (400-599), not %d", r.Status)
	case r.Count < 0:
		return Fault{}, errors.New("count must be 0 (until cleared) or more")
	case r.Status == 0 && delay == 0:
		return Fault{}, errors.New("a fault needs a status, a delay or both")
	}
	return Fault{Status: r.Status, Count: r.Count, Delay: delay, Message: r.Message, Accepted: r.Accepted}, nil
}

func parseDelay(raw json.RawMessage) (time.Duration, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var d time.Duration
	var str string
	if err := json.Unmarshal(raw, &str); err == nil {
		if d, err = time.ParseDuration(str); err != nil {
			return 0, fmt.Errorf("delay %q is not a duration such as \"2s\" or \"150ms\"", str)
		}
	} else {
		ms, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return 0, errors.New("delay must be a duration string such as \"2s\" or a number of milliseconds")
		}
		d = time.Duration(ms * float64(time.Millisecond))
	}
	if d < 0 {
		return 0, errors.New("delay must not be negative")
	}
	return d, nil
}

func (s *Server) deleteFaults(c *gin.Context) {
	s.ClearFaults()
	c.Status(http.StatusNoContent)
}

func (s *Server) putQuota(c *gin.Context) {
	var req struct {
		Limit *int64 `json:"limit"`
	}
	if !decodeControl(c, &req) {
		return
	}
	if req.Limit == nil || *req.Limit < 0 {
		abortWith(c, newAPIError(http.StatusBadRequest, "limit must be given: 0 for none, or the monthly message limit"))
		return
	}
	s.SetQuota(*req.Limit)
	c.Status(http.StatusNoContent)
}

func (s *Server) putProfile(c *gin.Context) {
	id := c.Param("userId")
	if !userIDRe.MatchString(id) {
		abortWith(c, newAPIError(http.StatusBadRequest, patternMessages[userIDPattern]))
		return
	}
	var req struct {
		DisplayName string `json:"displayName"`
	}
	if !decodeControl(c, &req) {
		return
	}
	if req.DisplayName == "" {
		abortWith(c, newAPIError(http.StatusBadRequest, "displayName must be specified"))
		return
	}
	s.SetProfile(id, req.DisplayName)
	c.Status(http.StatusNoContent)
}

// decodeControl refuses unknown fields so that a misspelt "delay_ms" is an
// error rather than a fault that does nothing.
func decodeControl(c *gin.Context, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		abortWith(c, newAPIError(http.StatusBadRequest, "invalid JSON body: "+err.Error()))
		return false
	}
	return true
}
