package apiserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/scenario"
)

// FriendDetail is one friend with their attributes, tags and enrollments.
type FriendDetail struct {
	Friend
	Attributes  map[string]string `json:"attributes"`
	Tags        []string          `json:"tags"`
	Enrollments []Enrollment      `json:"enrollments"`
}

// friend loads the friend named in the path.
func (s *Server) friend(c *gin.Context) (*models.Friend, error) {
	ch, err := s.channel(c)
	if err != nil {
		return nil, err
	}
	return s.store.Friend(c.Request.Context(), ch.ID, c.Param("userID"))
}

func (s *Server) friendDetail(c *gin.Context, f *models.Friend) {
	ctx := c.Request.Context()
	tags, err := s.store.FriendTags(ctx, f.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	es, err := s.store.Enrollments(ctx, models.EnrollmentFilter{ChannelID: f.ChannelID, FriendID: f.ID}, models.Page{Limit: 500})
	if err != nil {
		s.fail(c, err)
		return
	}
	if tags == nil {
		tags = []string{}
	}
	c.JSON(http.StatusOK, FriendDetail{Friend: toFriend(f), Attributes: f.AttributeMap(), Tags: tags,
		Enrollments: listOf(es, toEnrollment).Items})
}

func (s *Server) getFriend(c *gin.Context) {
	f, err := s.friend(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.friendDetail(c, f)
}

// setAttributes merges attributes; an empty value removes a key. The rules
// are the CSV upload's (models.CheckAttribute).
func (s *Server) setAttributes(c *gin.Context) {
	f, err := s.friend(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var attrs map[string]string
	if err := decode(c, &attrs); err != nil {
		s.fail(c, err)
		return
	}
	var ps []stepcast.Problem
	for k, v := range attrs {
		if n := utf8.RuneCountInString(k); n == 0 || n > models.MaxAttributeKey {
			ps = append(ps, stepcast.Problem{Path: k, Message: fmt.Sprintf("keys are 1 to %d characters", models.MaxAttributeKey)})
			continue
		}
		stored, problem := models.CheckAttribute(k, v)
		if problem != "" {
			ps = append(ps, stepcast.Problem{Path: k, Message: problem})
		}
		attrs[k] = stored
	}
	if len(f.AttributeMap())+len(attrs) > models.MaxAttributes {
		ps = append(ps, stepcast.Problem{Path: "", Message: fmt.Sprintf("a friend has at most %d attributes", models.MaxAttributes)})
	}
	if len(ps) > 0 {
		s.fail(c, &stepcast.Error{Code: stepcast.EINVALID, Message: "attributes are not valid", Problems: ps})
		return
	}
	if f, err = s.store.SetAttributes(c.Request.Context(), f.ID, attrs); err != nil {
		s.fail(c, err)
		return
	}
	s.friendDetail(c, f)
}

// TagsRequest adds and removes tags.
type TagsRequest struct {
	Add    []string `json:"add"`
	Remove []string `json:"remove"`
}

func (s *Server) setTags(c *gin.Context) {
	f, err := s.friend(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var req TagsRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if slices.Contains(req.Add, "") || slices.Contains(req.Remove, "") || len(req.Add)+len(req.Remove) == 0 {
		s.fail(c, stepcast.Errorf(stepcast.EINVALID, "add or remove at least one tag; tags are not empty"))
		return
	}
	ctx := c.Request.Context()
	if err := s.store.AddTags(ctx, f.ID, req.Add); err != nil {
		s.fail(c, err)
		return
	}
	if err := s.store.RemoveTags(ctx, f.ID, req.Remove); err != nil {
		s.fail(c, err)
		return
	}
	s.friendDetail(c, f)
}

func (s *Server) setRoute(c *gin.Context) {
	f, err := s.friend(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var req struct {
		Route string `json:"route"`
	}
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.Route == "" {
		s.fail(c, stepcast.Errorf(stepcast.EINVALID, "route is required"))
		return
	}
	if err := s.enroll.SetRoute(c.Request.Context(), f, req.Route, time.Now()); err != nil {
		s.fail(c, err)
		return
	}
	s.friendDetail(c, f)
}

// enrollFriend enrolls a friend in a scenario by hand, in its latest
// published version.
func (s *Server) enrollFriend(c *gin.Context) {
	f, err := s.friend(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var req struct {
		ScenarioID uint `json:"scenarioId"`
	}
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	sc, err := s.store.Scenario(ctx, req.ScenarioID)
	if err != nil {
		s.fail(c, err)
		return
	}
	if sc.ChannelID != f.ChannelID || sc.Version == 0 {
		s.fail(c, stepcast.Errorf(stepcast.ECONFLICT, "scenario %d is not a published scenario of this channel", sc.ID))
		return
	}
	v, err := s.store.ScenarioVersion(ctx, sc.ID, sc.Version)
	if err != nil {
		s.fail(c, err)
		return
	}
	doc, err := scenario.Parse([]byte(v.Document))
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.enroll.Enroll(ctx, sc, v.Version, doc, f); err != nil {
		s.fail(c, err)
		return
	}
	s.friendDetail(c, f)
}

// EventRequest is something a friend did, reported through the admin API.
type EventRequest struct {
	// ID is the reporter's own ID of the event, optional: an event sent
	// again with the same ID (a retry after a timeout) is recorded once.
	ID     string            `json:"id"`
	UserID string            `json:"userId"`
	Type   string            `json:"type"`
	Name   string            `json:"name"`
	Props  map[string]string `json:"props"`
	At     *time.Time        `json:"at"`
}

// recordEvent stores an event and signals it to the friend's enrollments.
func (s *Server) recordEvent(c *gin.Context) {
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var req EventRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if !slices.Contains(scenario.EventTypes, req.Type) || req.Type == scenario.EventDelivered {
		s.fail(c, stepcast.Errorf(stepcast.EINVALID, "type %q is not an event type one can report (one of: %v)", req.Type, reportable()))
		return
	}
	if ps := checkEventID(req.ID); ps != nil {
		s.fail(c, &stepcast.Error{Code: stepcast.EINVALID, Message: "event is not valid", Problems: ps})
		return
	}
	s.saveEvent(c, ch, &req)
}

func reportable() []string {
	return slices.DeleteFunc(slices.Clone(scenario.EventTypes), func(t string) bool { return t == scenario.EventDelivered })
}

// AudienceRequest creates an audience: a rule (a scenario condition), or
// uploaded user IDs.
type AudienceRequest struct {
	Key     string              `json:"key"`
	Name    string              `json:"name"`
	Kind    string              `json:"kind"`
	Rule    *scenario.Condition `json:"rule"`
	UserIDs []string            `json:"userIds"`
}

// Audience is an audience as the API shows it.
type Audience struct {
	ID   uint                `json:"id"`
	Key  string              `json:"key"`
	Name string              `json:"name"`
	Kind string              `json:"kind"`
	Rule *scenario.Condition `json:"rule,omitempty"`
}

func toAudience(a *models.Audience) Audience {
	out := Audience{ID: a.ID, Key: a.Key, Name: a.Name, Kind: a.Kind}
	if a.Rule != "" {
		out.Rule = &scenario.Condition{}
		_ = json.Unmarshal([]byte(a.Rule), out.Rule)
	}
	return out
}

var audienceKinds = []string{models.AudienceUploaded, models.AudienceClick, models.AudienceImpression,
	models.AudienceChatTag, models.AudienceRoute, models.AudienceWebTraffic, models.AudienceRule}

func (s *Server) createAudience(c *gin.Context) {
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var req AudienceRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if err := validateAudience(&req); err != nil {
		s.fail(c, err)
		return
	}
	a := models.Audience{ChannelID: ch.ID, Key: req.Key, Name: req.Name, Kind: req.Kind}
	if req.Rule != nil {
		b, _ := json.Marshal(req.Rule)
		a.Rule = string(b)
	}
	ctx := c.Request.Context()
	if err := s.store.CreateAudience(ctx, &a); err != nil {
		s.fail(c, err)
		return
	}
	if err := s.store.AddAudienceMembers(ctx, a.ID, req.UserIDs); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, toAudience(&a))
}

func validateAudience(req *AudienceRequest) error {
	var ps []stepcast.Problem
	add := func(path, msg string) { ps = append(ps, stepcast.Problem{Path: path, Message: msg}) }
	if !keyPattern.MatchString(req.Key) {
		add("key", "must be 1 to 63 lower-case letters, digits and dashes")
	}
	if req.Name == "" {
		add("name", "is required")
	}
	switch {
	case !slices.Contains(audienceKinds, req.Kind):
		add("kind", fmt.Sprintf("%q is not an audience kind (one of: %v)", req.Kind, audienceKinds))
	case req.Kind == models.AudienceUploaded:
		if req.Rule != nil {
			add("rule", "an uploaded audience has user IDs, not a rule")
		}
		for i, u := range req.UserIDs {
			if !userIDPattern.MatchString(u) {
				add(fmt.Sprintf("userIds[%d]", i), fmt.Sprintf("%q is not a LINE user ID", u))
			}
		}
	default:
		if len(req.UserIDs) > 0 {
			add("userIds", "only an uploaded audience lists user IDs")
		}
		if req.Rule == nil {
			add("rule", "is required")
			break
		}
		if err := scenario.ValidateCondition(req.Rule, "rule"); err != nil {
			ps = append(ps, err.(*stepcast.Error).Problems...)
		}
	}
	if len(ps) > 0 {
		return &stepcast.Error{Code: stepcast.EINVALID, Message: "audience is not valid", Problems: ps}
	}
	return nil
}

func (s *Server) listAudiences(c *gin.Context) {
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	as, err := s.store.Audiences(c.Request.Context(), ch.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, listOf(as, toAudience))
}

func (s *Server) defineTags(c *gin.Context) {
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var req struct {
		Tags []string `json:"tags"`
	}
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if len(req.Tags) == 0 || slices.Contains(req.Tags, "") {
		s.fail(c, stepcast.Errorf(stepcast.EINVALID, "tags must list at least one tag, none empty"))
		return
	}
	if err := s.store.DefineTags(c.Request.Context(), ch.ID, req.Tags); err != nil {
		s.fail(c, err)
		return
	}
	s.listTags(c)
}

func (s *Server) listTags(c *gin.Context) {
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	tags, err := s.store.ChannelTags(c.Request.Context(), ch.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, List[string]{Items: append([]string{}, tags...)})
}
