package fakeline

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
)

const (
	retryKeyHeader          = "X-Line-Retry-Key"
	requestIDHeader         = "X-Line-Request-Id"
	acceptedRequestIDHeader = "X-Line-Accepted-Request-Id"

	// maxBodyBytes bounds what the fake reads; LINE's own limits are far
	// below it, so no valid request comes near.
	maxBodyBytes = 2 << 20

	ctxToken     = "fakeline.token"
	ctxRequestID = "fakeline.requestID"
	ctxBody      = "fakeline.body"
)

var userIDRe = regexp.MustCompile(userIDPattern)

func (s *Server) routes() *gin.Engine {
	r := gin.New()
	r.Use(gin.CustomRecovery(func(c *gin.Context, _ any) {
		c.AbortWithStatusJSON(http.StatusInternalServerError, errorResponse{Message: "Internal server error"})
	}))
	r.NoRoute(func(c *gin.Context) {
		c.JSON(http.StatusNotFound, errorResponse{Message: "Not found"})
	})

	api := r.Group("/v2/bot", s.checkRequest)
	api.POST("/message/push", s.push)
	api.POST("/message/multicast", s.multicast)
	api.GET("/message/quota", s.quota)
	api.GET("/message/quota/consumption", s.quotaConsumption)
	api.GET("/profile/:userId", s.profile)
	api.GET("/info", s.botInfo)

	fake := r.Group("/fake")
	fake.GET("/pushes", s.getPushes)
	fake.DELETE("/pushes", s.deletePushes)
	fake.POST("/faults", s.postFault)
	fake.DELETE("/faults", s.deleteFaults)
	fake.PUT("/quota", s.putQuota)
	fake.PUT("/profiles/:userId", s.putProfile)
	return r
}

func abortWith(c *gin.Context, e *apiError) {
	c.AbortWithStatusJSON(e.status, e.body)
}

// checkRequest does for every LINE call what LINE does before acting: it
// gives the request an ID, wants a bearer token, and validates the request
// against the document.
func (s *Server) checkRequest(c *gin.Context) {
	id := uuid.NewString()
	c.Header(requestIDHeader, id)
	c.Set(ctxRequestID, id)

	token, ok := bearerToken(c.GetHeader("Authorization"))
	if !ok {
		abortWith(c, newAPIError(http.StatusUnauthorized,
			"Authorization header required. Must follow the scheme, 'Authorization: Bearer <ACCESS TOKEN>'"))
		return
	}
	c.Set(ctxToken, token)

	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			abortWith(c, newAPIError(http.StatusRequestEntityTooLarge, "The request body is too large"))
			return
		}
		abortWith(c, newAPIError(http.StatusBadRequest, "The request body could not be read"))
		return
	}
	if e := s.spec.check(c.Request, body); e != nil {
		abortWith(c, e)
		return
	}
	c.Set(ctxBody, body)
	c.Next()
}

func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

func (s *Server) push(c *gin.Context) {
	var req struct {
		To       string            `json:"to"`
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(c.MustGet(ctxBody).([]byte), &req); err != nil {
		abortWith(c, newAPIError(http.StatusBadRequest, err.Error()))
		return
	}
	s.send(c, Push{Kind: "push", To: []string{req.To}, Messages: req.Messages})
}

func (s *Server) multicast(c *gin.Context) {
	var req struct {
		To       []string          `json:"to"`
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(c.MustGet(ctxBody).([]byte), &req); err != nil {
		abortWith(c, newAPIError(http.StatusBadRequest, err.Error()))
		return
	}
	s.send(c, Push{Kind: "multicast", To: req.To, Messages: req.Messages})
}

// send answers a valid push or multicast: injected faults first (or last,
// for a fault that strikes after acceptance), then what LINE itself would say.
func (s *Server) send(c *gin.Context, p Push) {
	p.RetryKey = c.GetHeader(retryKeyHeader)
	p.ChannelToken = c.GetString(ctxToken)
	p.RequestID = c.GetString(ctxRequestID)

	fault, faulted := s.takeFault()
	if faulted && !fault.Accepted && !strike(c, fault) {
		return
	}
	status, body, acceptedID := s.accept(p)
	if faulted && fault.Accepted && !strike(c, fault) {
		return
	}
	if acceptedID != "" {
		c.Header(acceptedRequestIDHeader, acceptedID)
	}
	c.JSON(status, body)
}

// strike waits out the fault's delay and answers its status. It reports
// whether the request should still be answered normally.
func strike(c *gin.Context, f Fault) bool {
	if !sleep(c.Request.Context(), f.Delay) {
		// The client has gone; there is nobody to answer.
		c.Abort()
		return false
	}
	if f.Status == 0 {
		return true
	}
	msg := f.Message
	if msg == "" {
		msg = http.StatusText(f.Status)
	}
	abortWith(c, newAPIError(f.Status, msg))
	return false
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// accept applies LINE's own rules to a valid send and records it if they
// allow. It returns the status, the body and, for a reused retry key, the
// ID of the request that first used it.
func (s *Server) accept(p Push) (int, any, string) {
	types := messageTypes(p.Messages)

	s.mu.Lock()
	defer s.mu.Unlock()
	key := retryKey{token: p.ChannelToken, key: p.RetryKey}
	if p.RetryKey != "" {
		if prev, ok := s.accepted[key]; ok {
			return http.StatusConflict, errorResponse{Message: "The retry key is already accepted", SentMessages: prev.sent}, prev.requestID
		}
	}
	n := int64(len(p.Messages) * len(p.To))
	if s.limit > 0 && s.usage+n > s.limit {
		return http.StatusTooManyRequests, errorResponse{Message: "You have reached your monthly limit."}, ""
	}
	s.usage += n
	p.At = time.Now()
	s.pushes = append(s.pushes, p.clone())

	var sent []sentMessage
	if p.Kind == "push" {
		for _, t := range types {
			s.messageID++
			m := sentMessage{ID: strconv.FormatInt(s.messageID, 10)}
			if quotable[t] {
				m.QuoteToken = strings.ReplaceAll(uuid.NewString(), "-", "")
			}
			sent = append(sent, m)
		}
	}
	if p.RetryKey != "" {
		s.accepted[key] = acceptance{requestID: p.RequestID, sent: sent}
	}
	if p.Kind == "multicast" {
		return http.StatusOK, struct{}{}, ""
	}
	return http.StatusOK, struct {
		SentMessages []sentMessage `json:"sentMessages"`
	}{sent}, ""
}

// quotable lists the message types that users can quote, which are the ones
// LINE gives a quote token for.
var quotable = map[string]bool{"text": true, "textV2": true, "sticker": true, "image": true, "video": true}

func messageTypes(msgs []json.RawMessage) []string {
	types := make([]string, len(msgs))
	for i, m := range msgs {
		var v struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(m, &v) // validated already
		types[i] = v.Type
	}
	return types
}

func (s *Server) quota(c *gin.Context) {
	s.mu.Lock()
	limit := s.limit
	s.mu.Unlock()
	if limit == 0 {
		c.JSON(http.StatusOK, gin.H{"type": "none"})
		return
	}
	c.JSON(http.StatusOK, gin.H{"type": "limited", "value": limit})
}

func (s *Server) quotaConsumption(c *gin.Context) {
	s.mu.Lock()
	usage := s.usage
	s.mu.Unlock()
	c.JSON(http.StatusOK, gin.H{"totalUsage": usage})
}

// profile treats every well-formed user ID as a friend. LINE answers 404
// for a user it cannot show, which is what a malformed ID gets here.
func (s *Server) profile(c *gin.Context) {
	id := c.Param("userId")
	if !userIDRe.MatchString(id) {
		abortWith(c, newAPIError(http.StatusNotFound, "Not found"))
		return
	}
	s.mu.Lock()
	name, ok := s.profiles[id]
	s.mu.Unlock()
	if !ok {
		name = defaultDisplayName(id)
	}
	c.JSON(http.StatusOK, gin.H{"userId": id, "displayName": name, "language": "ja"})
}

func defaultDisplayName(userID string) string {
	return "LINE User " + userID[len(userID)-4:]
}

func (s *Server) botInfo(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{
		"userId":         "U00000000000000000000000000fa4e11",
		"basicId":        "@fakeline",
		"displayName":    "Fake LINE",
		"chatMode":       "bot",
		"markAsReadMode": "auto",
	})
}
