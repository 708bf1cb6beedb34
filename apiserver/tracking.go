package apiserver

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/links"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/scenario"
)

// redirect is the tracked link: it records the click (time, user agent,
// the OS it names), signals the friend's enrollments, and sends the person
// on to the scenario's URL. A click that cannot be recorded still
// redirects: the person came for the page.
func (s *Server) redirect(c *gin.Context) {
	ctx := c.Request.Context()
	linkID, friendID, err := s.links.Parse(c.Param("token"))
	if err != nil {
		s.fail(c, err)
		return
	}
	l, err := s.store.TrackedLink(ctx, linkID)
	if err != nil {
		s.fail(c, stepcast.Errorf(stepcast.ENOTFOUND, "link not found"))
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Header("Referrer-Policy", "no-referrer")
	defer c.Redirect(http.StatusFound, l.URL)

	f, err := s.store.FriendByID(ctx, friendID)
	if err != nil || f.ChannelID != l.ChannelID {
		s.log.WarnContext(ctx, "click by an unknown friend", "link", linkID, "friend", friendID)
		return
	}
	sc, err := s.store.Scenario(ctx, l.ScenarioID)
	if err != nil {
		s.log.ErrorContext(ctx, "click: scenario", "error", err)
		return
	}
	ua := c.Request.UserAgent()
	props := map[string]string{"url": l.URL}
	if os := links.OSFromUserAgent(ua); os != "" {
		props["os"] = os
		if _, err := s.store.SetAttributes(ctx, f.ID, map[string]string{"os": os}); err != nil {
			s.log.ErrorContext(ctx, "click: os attribute", "error", err)
		}
	}
	if len(ua) > 512 {
		ua = ua[:512]
	}
	props["userAgent"] = ua
	b, _ := json.Marshal(props)
	ev := &models.FriendEvent{Type: scenario.EventClick, ScenarioKey: sc.Key, NodeID: l.NodeID, Props: string(b), At: time.Now()}
	if _, err := s.enroll.Event(ctx, f, ev); err != nil {
		s.log.ErrorContext(ctx, "click not recorded or not signalled", "error", err)
	}
}

// webEventTypes are what a shop's site may report.
var webEventTypes = []string{scenario.EventPageView, scenario.EventAddToCart, scenario.EventPurchase, scenario.EventCustom}

// WebEvent is an event from the shop's site or server.
type WebEvent struct {
	// ID is the shop's own ID of the event, optional: an event sent again
	// with the same ID (a retry after a timeout) is recorded once.
	ID     string            `json:"id"`
	UserID string            `json:"userId"`
	Type   string            `json:"type"`
	Name   string            `json:"name"`
	Props  map[string]string `json:"props"`
	At     *time.Time        `json:"at"`
}

// cors lets a shop's pages send web events from the browser.
func cors(c *gin.Context) {
	c.Header("Access-Control-Allow-Origin", "*")
	c.Header("Access-Control-Allow-Methods", "POST, OPTIONS")
	c.Header("Access-Control-Allow-Headers", "Content-Type, X-Stepcast-Key")
	c.Header("Access-Control-Max-Age", "600")
	if c.Request.Method == http.MethodOptions {
		c.AbortWithStatus(http.StatusNoContent)
		return
	}
	c.Next()
}

// webEvent records a web event, identified by LINE user ID, and signals it
// to the friend's enrollments. The channel's events key authenticates it.
func (s *Server) webEvent(c *gin.Context) {
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	key := c.GetHeader("X-Stepcast-Key")
	sum := sha256.Sum256([]byte(key))
	if key == "" || ch.EventsKeyHash == "" || subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(ch.EventsKeyHash)) != 1 {
		s.fail(c, stepcast.Errorf(stepcast.EUNAUTHORIZED, "X-Stepcast-Key is missing or is not this channel's events key"))
		return
	}
	var req WebEvent
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	var ps []stepcast.Problem
	if !userIDPattern.MatchString(req.UserID) {
		ps = append(ps, stepcast.Problem{Path: "userId", Message: fmt.Sprintf("%q is not a LINE user ID", req.UserID)})
	}
	if !slices.Contains(webEventTypes, req.Type) {
		ps = append(ps, stepcast.Problem{Path: "type", Message: fmt.Sprintf("%q is not a web event type (one of: %s)", req.Type, strings.Join(webEventTypes, ", "))})
	}
	if req.Type == scenario.EventCustom && req.Name == "" {
		ps = append(ps, stepcast.Problem{Path: "name", Message: "a custom event needs a name"})
	}
	ps = append(ps, checkEventID(req.ID)...)
	if len(req.Props) > 50 {
		ps = append(ps, stepcast.Problem{Path: "props", Message: "at most 50 properties"})
	}
	for k, v := range req.Props {
		if len(k) > 64 || len(v) > 2048 {
			ps = append(ps, stepcast.Problem{Path: "props." + k, Message: "keys are at most 64 bytes and values 2048"})
		}
	}
	if len(ps) > 0 {
		s.fail(c, &stepcast.Error{Code: stepcast.EINVALID, Message: "event is not valid", Problems: ps})
		return
	}
	s.saveEvent(c, ch, &EventRequest{ID: req.ID, UserID: req.UserID, Type: req.Type, Name: req.Name, Props: req.Props, At: req.At})
}

// checkEventID checks a reporter's event ID.
func checkEventID(id string) []stepcast.Problem {
	if len(id) > 128 || strings.ContainsRune(id, 0) {
		return []stepcast.Problem{{Path: "id", Message: "an event ID is at most 128 bytes, with no NUL"}}
	}
	return nil
}

// saveEvent stores an event of a known friend and signals it: 201 for a
// new event, 200 for one whose ID was recorded before.
func (s *Server) saveEvent(c *gin.Context, ch *models.Channel, req *EventRequest) {
	f, err := s.store.Friend(c.Request.Context(), ch.ID, req.UserID)
	if err != nil {
		s.fail(c, err)
		return
	}
	at := time.Now()
	if req.At != nil {
		at = *req.At
	}
	props, _ := json.Marshal(req.Props)
	ev := &models.FriendEvent{Type: req.Type, Name: req.Name, Props: string(props), At: at,
		SourceKey: models.SourceKey(models.SourceAPI, req.ID)}
	isNew, err := s.enroll.Event(c.Request.Context(), f, ev)
	if err != nil {
		s.fail(c, err)
		return
	}
	status := http.StatusOK
	if isNew {
		status = http.StatusCreated
	}
	c.JSON(status, gin.H{"id": ev.ID})
}

// newEventsKey makes a channel's events key and stores its hash.
func (s *Server) newEventsKey(c *gin.Context, channelID uint) (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	key := "sk_" + hex.EncodeToString(b)
	sum := sha256.Sum256([]byte(key))
	return key, s.store.SetEventsKeyHash(c.Request.Context(), channelID, hex.EncodeToString(sum[:]))
}

// rotateEventsKey replaces the channel's events key; the old one stops
// working at once.
func (s *Server) rotateEventsKey(c *gin.Context) {
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	key, err := s.newEventsKey(c, ch.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"eventsKey": key})
}

// KeywordRuleRequest makes a keyword rule.
type KeywordRuleRequest struct {
	Keyword string `json:"keyword"`
	Exact   bool   `json:"exact"`
	Tag     string `json:"tag"`
}

// KeywordRule is a keyword rule as the API shows it.
type KeywordRule struct {
	ID      uint   `json:"id"`
	Keyword string `json:"keyword"`
	Exact   bool   `json:"exact"`
	Tag     string `json:"tag"`
}

func toKeywordRule(r *models.KeywordRule) KeywordRule {
	return KeywordRule{ID: r.ID, Keyword: r.Keyword, Exact: r.Exact, Tag: r.Tag}
}

func (s *Server) createKeywordRule(c *gin.Context) {
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var req KeywordRuleRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	var ps []stepcast.Problem
	if strings.TrimSpace(req.Keyword) == "" {
		ps = append(ps, stepcast.Problem{Path: "keyword", Message: "is required"})
	}
	if req.Tag == "" {
		ps = append(ps, stepcast.Problem{Path: "tag", Message: "is required"})
	}
	if len(ps) > 0 {
		s.fail(c, &stepcast.Error{Code: stepcast.EINVALID, Message: "keyword rule is not valid", Problems: ps})
		return
	}
	r := models.KeywordRule{ChannelID: ch.ID, Keyword: strings.TrimSpace(req.Keyword), Exact: req.Exact, Tag: req.Tag}
	if err := s.store.DefineTags(c.Request.Context(), ch.ID, []string{req.Tag}); err != nil {
		s.fail(c, err)
		return
	}
	if err := s.store.CreateKeywordRule(c.Request.Context(), &r); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, toKeywordRule(&r))
}

func (s *Server) listKeywordRules(c *gin.Context) {
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	rs, err := s.store.KeywordRules(c.Request.Context(), ch.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, listOf(rs, toKeywordRule))
}

func (s *Server) deleteKeywordRule(c *gin.Context) {
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	id, err := idParam(c, "ruleID", "keyword rule")
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.store.DeleteKeywordRule(c.Request.Context(), ch.ID, id); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// routePattern keeps route names plain.
var routePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// addFriend is a tracked friend-add link of an add route: it counts the
// visit and sends the person on to the account's add-friend URL. LINE does
// not tell a bot which link a new friend came by, so the visit cannot be
// tied to the follow that may come; the friend's route is set through
// the API (say, by the shop's page after login), and counts for the follow
// if it comes within enroll.RouteWindow.
func (s *Server) addFriend(c *gin.Context) {
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	route := c.Param("route")
	if !routePattern.MatchString(route) {
		s.fail(c, stepcast.Errorf(stepcast.EINVALID, "route %q is not a route name (letters, digits, . _ -)", route))
		return
	}
	if ch.AddFriendURL == "" {
		s.fail(c, stepcast.Errorf(stepcast.ENOTFOUND, "channel %d has no add-friend URL; set addFriendUrl", ch.ID))
		return
	}
	v := &models.RouteVisit{ChannelID: ch.ID, Route: route, OS: links.OSFromUserAgent(c.Request.UserAgent()), At: time.Now()}
	if err := s.store.RecordRouteVisit(c.Request.Context(), v); err != nil {
		s.log.ErrorContext(c.Request.Context(), "route visit not recorded", "error", err)
	}
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusFound, ch.AddFriendURL)
}

// routeVisits counts the visits of each add route's link.
func (s *Server) routeVisits(c *gin.Context) {
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	since := time.Now().AddDate(0, 0, -30)
	if q := c.Query("since"); q != "" {
		if since, err = time.Parse(time.RFC3339, q); err != nil {
			s.fail(c, stepcast.Errorf(stepcast.EINVALID, "query parameter since must be an RFC 3339 time, not %q", q))
			return
		}
	}
	visits, err := s.store.RouteVisits(c.Request.Context(), ch.ID, since)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"since": since.UTC(), "visits": visits})
}
