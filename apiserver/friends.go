package apiserver

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/models"
)

// Friend is a friend as the API shows it.
type Friend struct {
	ID              uint       `json:"id"`
	UserID          string     `json:"userId"`
	Status          string     `json:"status"`
	DisplayName     string     `json:"displayName,omitempty"`
	AddRoute        string     `json:"addRoute,omitempty"`
	FirstFollowedAt time.Time  `json:"firstFollowedAt"`
	LastFollowedAt  time.Time  `json:"lastFollowedAt"`
	BlockedAt       *time.Time `json:"blockedAt,omitempty"`
}

func toFriend(f *models.Friend) Friend {
	return Friend{ID: f.ID, UserID: f.UserID, Status: f.Status, DisplayName: f.DisplayName, AddRoute: f.AddRoute,
		FirstFollowedAt: f.FirstFollowedAt, LastFollowedAt: f.LastFollowedAt, BlockedAt: f.BlockedAt}
}

var friendStatuses = map[string]bool{"": true, models.FriendFollowing: true, models.FriendBlocked: true}

func (s *Server) listFriends(c *gin.Context) {
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	p, err := page(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	status := c.Query("status")
	if !friendStatuses[status] {
		s.fail(c, stepcast.Errorf(stepcast.EINVALID, "status must be following or blocked, not %q", status))
		return
	}
	fs, err := s.store.Friends(c.Request.Context(), models.FriendFilter{ChannelID: ch.ID, Status: status}, p)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, listOf(fs, toFriend))
}

// Enrollment is an enrollment as the API shows it.
type Enrollment struct {
	ID              uint       `json:"id"`
	ScenarioID      uint       `json:"scenarioId"`
	ScenarioVersion int        `json:"scenarioVersion"`
	FriendID        uint       `json:"friendId"`
	WorkflowID      string     `json:"workflowId"`
	RunID           string     `json:"runId"`
	Status          string     `json:"status"`
	ExitReason      string     `json:"exitReason,omitempty"`
	StartedAt       time.Time  `json:"startedAt"`
	EndedAt         *time.Time `json:"endedAt,omitempty"`
}

func toEnrollment(e *models.Enrollment) Enrollment {
	return Enrollment{ID: e.ID, ScenarioID: e.ScenarioID, ScenarioVersion: e.ScenarioVersion, FriendID: e.FriendID,
		WorkflowID: e.WorkflowID, RunID: e.RunID, Status: e.Status, ExitReason: e.ExitReason, StartedAt: e.StartedAt, EndedAt: e.EndedAt}
}

var enrollmentStatuses = map[string]bool{"": true, models.EnrollmentRunning: true, models.EnrollmentCompleted: true, models.EnrollmentExited: true}

func (s *Server) listEnrollments(c *gin.Context) {
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	f := models.EnrollmentFilter{ChannelID: ch.ID, Status: c.Query("status")}
	if !enrollmentStatuses[f.Status] {
		s.fail(c, stepcast.Errorf(stepcast.EINVALID, "status must be running, completed or exited, not %q", f.Status))
		return
	}
	p, err := page(c)
	if err == nil {
		f.ScenarioID, err = optionalID(c, "scenarioId")
	}
	if err == nil {
		f.FriendID, err = optionalID(c, "friendId")
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	es, err := s.store.Enrollments(c.Request.Context(), f, p)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, listOf(es, toEnrollment))
}

// Delivery is one step's push as the API shows it.
type Delivery struct {
	ID            uint       `json:"id"`
	ScenarioID    uint       `json:"scenarioId"`
	FriendID      uint       `json:"friendId"`
	WorkflowID    string     `json:"workflowId"`
	NodeID        string     `json:"nodeId"`
	RetryKey      string     `json:"retryKey"`
	Status        string     `json:"status"`
	MessageCount  int        `json:"messageCount"`
	Attempts      int        `json:"attempts"`
	Error         string     `json:"error,omitempty"`
	LineRequestID string     `json:"lineRequestId,omitempty"`
	SentAt        *time.Time `json:"sentAt,omitempty"`
	CreatedAt     time.Time  `json:"createdAt"`
}

func toDelivery(d *models.Delivery) Delivery {
	return Delivery{ID: d.ID, ScenarioID: d.ScenarioID, FriendID: d.FriendID, WorkflowID: d.WorkflowID, NodeID: d.NodeID,
		RetryKey: d.RetryKey, Status: d.Status, MessageCount: d.MessageCount, Attempts: d.Attempts, Error: d.Error,
		LineRequestID: d.LineRequestID, SentAt: d.SentAt, CreatedAt: d.CreatedAt}
}

var deliveryStatuses = map[string]bool{"": true, models.DeliverySending: true, models.DeliverySent: true, models.DeliveryFailed: true, models.DeliverySkipped: true}

func (s *Server) listDeliveries(c *gin.Context) {
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	f := models.DeliveryFilter{ChannelID: ch.ID, Status: c.Query("status")}
	if !deliveryStatuses[f.Status] {
		s.fail(c, stepcast.Errorf(stepcast.EINVALID, "status must be sending, sent, failed or skipped, not %q", f.Status))
		return
	}
	p, err := page(c)
	if err == nil {
		f.ScenarioID, err = optionalID(c, "scenarioId")
	}
	if err == nil {
		f.FriendID, err = optionalID(c, "friendId")
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	ds, err := s.store.Deliveries(c.Request.Context(), f, p)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, listOf(ds, toDelivery))
}
