// Package enroll applies what friends do to their enrollments: a follow
// starts one workflow per matching scenario, a block signals every running
// one. The webhook inbox and the admin API both go through it, so there is
// one way in.
package enroll

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/metrics"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/scenario"
	"github.com/stepcast/stepcast/workflows"
)

// Service starts and signals enrollment workflows.
type Service struct {
	Store     *models.Store
	Temporal  client.Client
	TaskQueue string
	Metrics   *metrics.Metrics
	Log       *slog.Logger
}

// Follow records a follow and enrolls the friend in every active scenario
// whose start condition matches. A follow older than what is known of the
// friend (events out of order) enrolls nobody.
func (s *Service) Follow(ctx context.Context, channelID uint, userID string, at time.Time) error {
	friend, applied, err := s.Store.ApplyFollow(ctx, channelID, userID, at)
	if err != nil {
		return err
	}
	if !applied || friend.Status != models.FriendFollowing {
		return nil
	}
	scs, err := s.Store.ActiveScenarios(ctx, channelID)
	if err != nil {
		return err
	}
	for _, sc := range scs {
		doc, err := scenario.Parse([]byte(sc.Version.Document))
		if err != nil {
			return fmt.Errorf("enroll: scenario %d version %d: %w", sc.Scenario.ID, sc.Version.Version, err)
		}
		if !startsOnFollow(doc, friend) {
			continue
		}
		if err := s.Enroll(ctx, &sc.Scenario, sc.Version.Version, doc, friend); err != nil {
			return err
		}
	}
	return nil
}

func startsOnFollow(doc *scenario.Document, f *models.Friend) bool {
	if doc.Start.Type != scenario.StartFollow {
		return false
	}
	return len(doc.Start.Routes) == 0 || slices.Contains(doc.Start.Routes, f.AddRoute)
}

// Enroll starts the friend's workflow for one scenario version. A friend
// who already has a running enrollment in the scenario keeps it: the
// workflow ID is the same and the conflict policy uses the existing run, so
// concurrent or redelivered follows cannot enroll twice.
func (s *Service) Enroll(ctx context.Context, sc *models.Scenario, version int, doc *scenario.Document, f *models.Friend) error {
	wid := workflows.EnrollmentWorkflowID(sc.ChannelID, sc.Key, f.UserID)
	run, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       wid,
		TaskQueue:                s.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		// A friend who blocked and comes back may enter again; a finished
		// run does not stop a new one.
		WorkflowIDReusePolicy: enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.AttrChannel.ValueSet(fmt.Sprint(sc.ChannelID)),
			workflows.AttrScenario.ValueSet(sc.Key),
			workflows.AttrFriend.ValueSet(f.UserID),
		),
	}, workflows.EnrollmentWorkflow, workflows.EnrollmentInput{
		ChannelID: sc.ChannelID, ScenarioID: sc.ID, ScenarioKey: sc.Key, Version: version,
		FriendID: f.ID, UserID: f.UserID, Document: *doc,
	})
	if err != nil {
		return stepcast.Errorf(stepcast.EUNAVAILABLE, "start enrollment %s: %v", wid, err)
	}
	err = s.Store.RecordEnrollment(ctx, &models.Enrollment{
		ChannelID: sc.ChannelID, ScenarioID: sc.ID, ScenarioVersion: version, FriendID: f.ID,
		WorkflowID: wid, RunID: run.GetRunID(), StartedAt: time.Now().UTC(),
	})
	if err != nil {
		return err
	}
	if s.Metrics != nil {
		s.Metrics.EnrollmentsStarted.WithLabelValues(sc.Key).Inc()
	}
	s.Log.InfoContext(ctx, "enrolled", "workflow_id", wid, "run_id", run.GetRunID(), "version", version)
	return nil
}

// Unfollow marks the friend blocked and tells each running enrollment, which
// ends without sending anything more.
func (s *Service) Unfollow(ctx context.Context, channelID uint, userID string, at time.Time) error {
	friend, applied, err := s.Store.ApplyUnfollow(ctx, channelID, userID, at)
	if err != nil {
		return err
	}
	if !applied {
		return nil
	}
	return s.Signal(ctx, friend, workflows.FriendEvent{Type: workflows.EventUnfollow, At: at.UTC()})
}

// Signal sends an event to each of the friend's running enrollments. A run
// that has already ended is recorded as such.
func (s *Service) Signal(ctx context.Context, f *models.Friend, ev workflows.FriendEvent) error {
	es, err := s.Store.RunningEnrollmentsOfFriend(ctx, f.ID)
	if err != nil {
		return err
	}
	for _, e := range es {
		err := s.Temporal.SignalWorkflow(ctx, e.WorkflowID, e.RunID, workflows.SignalFriendEvent, ev)
		var nf *serviceerror.NotFound
		switch {
		case errors.As(err, &nf):
			if err := s.Store.FinishEnrollment(ctx, e.WorkflowID, e.RunID, models.EnrollmentCompleted, "", time.Now()); err != nil {
				return err
			}
		case err != nil:
			return stepcast.Errorf(stepcast.EUNAVAILABLE, "signal %s: %v", e.WorkflowID, err)
		}
	}
	return nil
}
