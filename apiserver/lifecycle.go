package apiserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/preview"
	"github.com/stepcast/stepcast/scenario"
	"github.com/stepcast/stepcast/workflows"
)

// setStatus returns a handler that moves a scenario to a status and tells
// its running enrollments.
func (s *Server) setStatus(to, action string) gin.HandlerFunc {
	return func(c *gin.Context) {
		sc, err := s.scenario(c)
		if err != nil {
			s.fail(c, err)
			return
		}
		sc, err = s.store.SetScenarioStatus(c.Request.Context(), sc.ID, to)
		if err != nil {
			s.fail(c, err)
			return
		}
		// The status is stored first: enrollments that miss the signal see
		// it at their next gate.
		if err := s.enroll.Control(c.Request.Context(), sc.ID, sc.ChannelID, action); err != nil {
			s.fail(c, err)
			return
		}
		c.JSON(http.StatusOK, toScenario(sc))
	}
}

func (s *Server) listVersions(c *gin.Context) {
	sc, err := s.scenario(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	vs, err := s.store.ScenarioVersions(c.Request.Context(), sc.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, listOf(vs, func(v *models.ScenarioVersion) Version {
		return Version{ScenarioID: v.ScenarioID, Version: v.Version, PublishedAt: v.PublishedAt}
	}))
}

// VersionDocument is a published version with its document.
type VersionDocument struct {
	Version
	Document scenario.Document `json:"document"`
}

func (s *Server) getVersion(c *gin.Context) {
	sc, err := s.scenario(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	n, err := strconv.Atoi(c.Param("version"))
	if err != nil {
		s.fail(c, stepcast.Errorf(stepcast.ENOTFOUND, "version %q not found", c.Param("version")))
		return
	}
	v, err := s.store.ScenarioVersion(c.Request.Context(), sc.ID, n)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := VersionDocument{Version: Version{ScenarioID: v.ScenarioID, Version: v.Version, PublishedAt: v.PublishedAt}}
	_ = json.Unmarshal([]byte(v.Document), &out.Document)
	c.JSON(http.StatusOK, out)
}

// validateScenario checks a document against the channel without saving it.
func (s *Server) validateScenario(c *gin.Context) {
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var req struct {
		Document json.RawMessage `json:"document"`
	}
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if _, _, err := s.document(c, ch.ID, req.Document); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"valid": true})
}

// PreviewRequest is a hypothetical friend and when they enroll. Version 0
// (or none) previews the draft.
type PreviewRequest struct {
	Friend  preview.Friend `json:"friend"`
	Start   *time.Time     `json:"start"`
	Version int            `json:"version"`
}

func (s *Server) previewScenario(c *gin.Context) {
	sc, err := s.scenario(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var req PreviewRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	raw := sc.Draft
	if req.Version != 0 {
		v, err := s.store.ScenarioVersion(c.Request.Context(), sc.ID, req.Version)
		if err != nil {
			s.fail(c, err)
			return
		}
		raw = v.Document
	}
	doc, err := scenario.Parse([]byte(raw))
	if err != nil {
		s.fail(c, err)
		return
	}
	in := preview.Input{Document: *doc, ScenarioKey: sc.Key, Friend: req.Friend}
	if req.Start != nil {
		in.Start = *req.Start
	}
	tl, err := preview.Run(in)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, tl)
}

// TestSendRequest names the node whose messages go to a test friend now.
type TestSendRequest struct {
	Node   string `json:"node"`
	UserID string `json:"userId"`
}

// testSend pushes one node's messages of the draft to a chosen friend now,
// outside any enrollment (nothing is recorded as a step delivery).
func (s *Server) testSend(c *gin.Context) {
	sc, err := s.scenario(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var req TestSendRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	doc, err := scenario.Parse([]byte(sc.Draft))
	if err != nil {
		s.fail(c, err)
		return
	}
	node, ok := doc.Node(req.Node)
	if !ok || node.Message == nil {
		s.fail(c, stepcast.Errorf(stepcast.EINVALID, "node %q is not a message node of scenario %d", req.Node, sc.ID))
		return
	}
	ctx := c.Request.Context()
	f, err := s.store.Friend(ctx, sc.ChannelID, req.UserID)
	if err != nil {
		s.fail(c, err)
		return
	}
	if f.Status != models.FriendFollowing {
		s.fail(c, stepcast.Errorf(stepcast.ECONFLICT, "friend %s has blocked the account", f.UserID))
		return
	}
	ch, err := s.store.Channel(ctx, sc.ChannelID)
	if err != nil {
		s.fail(c, err)
		return
	}
	requestID, err := s.sender.TestSend(ctx, ch, f, node.Message.Messages)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"sent": len(node.Message.Messages), "lineRequestId": requestID})
}

// EnrollmentState is an enrollment with its live state from the workflow.
type EnrollmentState struct {
	Enrollment
	State *workflows.State `json:"state,omitempty"`
}

func (s *Server) getEnrollment(c *gin.Context) {
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	id, err := idParam(c, "enrollmentID", "enrollment")
	if err != nil {
		s.fail(c, err)
		return
	}
	e, err := s.store.Enrollment(c.Request.Context(), ch.ID, id)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := EnrollmentState{Enrollment: toEnrollment(e)}
	v, err := s.temporal.QueryWorkflow(c.Request.Context(), e.WorkflowID, e.RunID, workflows.QueryState)
	if err == nil {
		var st workflows.State
		if v.Get(&st) == nil {
			out.State = &st
		}
	}
	c.JSON(http.StatusOK, out)
}

// audienceEnrollment shows the progress of the bulk job that enrolls an
// audience-start scenario's existing members, for its latest version.
func (s *Server) audienceEnrollment(c *gin.Context) {
	sc, err := s.scenario(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if sc.Version == 0 {
		s.fail(c, stepcast.Errorf(stepcast.ENOTFOUND, "scenario %d has not been published", sc.ID))
		return
	}
	wid := workflows.AudienceEnrollmentWorkflowID(sc.ChannelID, sc.Key, sc.Version)
	v, err := s.temporal.QueryWorkflow(c.Request.Context(), wid, "", workflows.QueryProgress)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		s.fail(c, stepcast.Errorf(stepcast.ENOTFOUND, "scenario %d version %d has no audience enrollment (its start is not an audience)", sc.ID, sc.Version))
		return
	}
	if err != nil {
		s.fail(c, stepcast.Errorf(stepcast.EUNAVAILABLE, "query %s: %v", wid, err))
		return
	}
	var p workflows.BulkProgress
	if err := v.Get(&p); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"workflowId": wid, "version": sc.Version, "progress": p})
}
