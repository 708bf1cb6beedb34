// Package enroll applies what friends do to their enrollments: a follow
// starts one workflow per matching scenario, a block signals every running
// one. The webhook inbox and the admin API both go through it, so there is
// one way in.
package enroll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/activities"
	"github.com/stepcast/stepcast/metrics"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/scenario"
	"github.com/stepcast/stepcast/workflows"
)

// Service starts and signals enrollment workflows.
type Service struct {
	Store    *models.Store
	Temporal client.Client
	// Namespace is Temporal's namespace of the client, "default" when
	// empty: events are signalled through the service API, which names it.
	Namespace string
	TaskQueue string
	Metrics   *metrics.Metrics
	Log       *slog.Logger

	// docs caches parsed scenario versions by row ID: versions never
	// change, and every follow needs them.
	docs sync.Map
}

// document returns the parsed document of a published version.
func (s *Service) document(v *models.ScenarioVersion) (*scenario.Document, error) {
	if d, ok := s.docs.Load(v.ID); ok {
		return d.(*scenario.Document), nil
	}
	doc, err := scenario.Parse([]byte(v.Document))
	if err != nil {
		return nil, fmt.Errorf("enroll: scenario %d version %d: %w", v.ScenarioID, v.Version, err)
	}
	s.docs.Store(v.ID, doc)
	return doc, nil
}

// FollowIn records a follow and enrolls the friend in every scenario of
// active (the channel's active scenarios) whose start condition matches. A
// follow older than what is known of the friend (events out of order)
// enrolls nobody.
//
// Many follows share one read of the active scenarios (the inbox reads them
// once per batch of events); they must have been read after the follow was
// received, so that a scenario published before the follow arrived is
// among them.
func (s *Service) FollowIn(ctx context.Context, active []models.ActiveScenario, channelID uint, userID string, at time.Time) error {
	c, err := s.Store.ApplyStatus(ctx, channelID, userID, at, models.FriendFollowing)
	if err != nil {
		return err
	}
	if !c.Applied || c.Friend.Status != models.FriendFollowing {
		return nil
	}
	// The scenario's days count from the follow, not from when the
	// workflow's first task runs: a worker minutes behind must not move a
	// friend who followed at 09:58 past a {"days": 0, "at": "10:00"} step
	// to the next day. An event without a timestamp (Decode reads it as
	// 1970) leaves the workflow's start.
	var enrolledAt time.Time
	if at.UnixMilli() > 0 {
		enrolledAt = at
	}
	for _, sc := range active {
		doc, err := s.document(&sc.Version)
		if err != nil {
			return err
		}
		ok, err := s.startsOnFollow(ctx, doc, c.Friend)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		err = s.enroll(ctx, &sc.Scenario, sc.Version.Version, doc, c.Friend, enrolledAt, c.Created)
		if err != nil && stepcast.ErrorCode(err) != stepcast.ECONFLICT {
			return err
		}
	}
	return nil
}

// startsOnFollow reports whether a follow by f starts the scenario: a
// follow start whose route filter (if any) matches, or an audience start
// whose audience f is in.
func (s *Service) startsOnFollow(ctx context.Context, doc *scenario.Document, f *models.Friend) (bool, error) {
	switch doc.Start.Type {
	case scenario.StartFollow:
		return len(doc.Start.Routes) == 0 || slices.Contains(doc.Start.Routes, f.AddRoute), nil
	case scenario.StartAudience:
		acts := &activities.Activities{Store: s.Store}
		return acts.InAudience(ctx, f.ChannelID, doc.Start.Audience, f, time.Time{}, 0)
	}
	return false, nil
}

// Enroll starts the friend's workflow for one scenario version. A friend
// who already has a running enrollment in the scenario keeps it: the
// workflow ID is the same and the conflict policy uses the existing run, so
// concurrent or redelivered follows cannot enroll twice. It refuses with
// ECONFLICT a scenario that is not active, outside its period, or that the
// friend already went through when its re-entry rule is never.
func (s *Service) Enroll(ctx context.Context, sc *models.Scenario, version int, doc *scenario.Document, f *models.Friend) error {
	return s.enroll(ctx, sc, version, doc, f, time.Time{}, false)
}

// enroll starts the enrollment; a non-zero enrolledAt is the time its days
// count from, when it is earlier than now. newFriend says that the event
// being applied made the friend, who then has no past enrollment to look
// up.
func (s *Service) enroll(ctx context.Context, sc *models.Scenario, version int, doc *scenario.Document, f *models.Friend, enrolledAt time.Time, newFriend bool) error {
	if sc.Status != models.ScenarioActive {
		return stepcast.Errorf(stepcast.ECONFLICT, "scenario %q is %s, not active", sc.Key, sc.Status)
	}
	if !doc.Period.Contains(time.Now()) {
		return stepcast.Errorf(stepcast.ECONFLICT, "scenario %q is outside its enrollment period", sc.Key)
	}
	if f.Status != models.FriendFollowing {
		return stepcast.Errorf(stepcast.ECONFLICT, "friend %s has blocked the account", f.UserID)
	}
	once := doc.Start.Reentry != scenario.ReentryAfterExit
	if !newFriend {
		past, err := s.Store.Enrollments(ctx, models.EnrollmentFilter{ChannelID: sc.ChannelID, ScenarioID: sc.ID, FriendID: f.ID}, models.Page{Limit: 1})
		if err != nil {
			return err
		}
		if len(past) > 0 && past[0].Status == models.EnrollmentRunning {
			return stepcast.Errorf(stepcast.ECONFLICT, "friend %s is already enrolled in scenario %q", f.UserID, sc.Key)
		}
		if len(past) > 0 && once {
			return stepcast.Errorf(stepcast.ECONFLICT, "friend %s already went through scenario %q, whose re-entry rule is never", f.UserID, sc.Key)
		}
		// A follow applied again (replayed by the inbox, or redelivered
		// after its record was pruned) once the run it started has ended:
		// re-entry is for a later follow, not the same one again. The row
		// is there even if this process stopped before writing it: the
		// run's end writes it.
		if len(past) > 0 && !enrolledAt.IsZero() && !past[0].FollowedAt.Before(enrolledAt) {
			return stepcast.Errorf(stepcast.ECONFLICT, "friend %s was enrolled in scenario %q by this follow already", f.UserID, sc.Key)
		}
	}
	// A friend who blocked and comes back may enter again where the
	// re-entry rule allows it: a finished run does not stop a new one.
	// Where it does not, Temporal refuses a second run too, so a friend
	// whose enrollment row is missing (the process stopped after the start
	// and before the row, and the run has ended since) is not enrolled
	// twice.
	reuse := enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
	if once {
		reuse = enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE
	}
	wid := workflows.EnrollmentWorkflowID(sc.ChannelID, sc.Key, f.UserID)
	run, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       wid,
		TaskQueue:                s.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    reuse,
		TypedSearchAttributes:    workflows.StartSearchAttributes(sc.ChannelID, sc.Key, f.UserID, doc),
	}, workflows.EnrollmentWorkflow, workflows.EnrollmentInput{
		ChannelID: sc.ChannelID, ScenarioID: sc.ID, ScenarioKey: sc.Key, Version: version,
		FriendID: f.ID, UserID: f.UserID, Document: *doc, EnrolledAt: enrolledAt,
		Revision: workflows.Revision,
	})
	var ended *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &ended) {
		return stepcast.Errorf(stepcast.ECONFLICT, "friend %s already went through scenario %q, whose re-entry rule is never", f.UserID, sc.Key)
	}
	if err != nil {
		return stepcast.Errorf(stepcast.EUNAVAILABLE, "start enrollment %s: %v", wid, err)
	}
	err = s.Store.RecordEnrollment(ctx, &models.Enrollment{
		ChannelID: sc.ChannelID, ScenarioID: sc.ID, ScenarioVersion: version, FriendID: f.ID,
		WorkflowID: wid, RunID: run.GetRunID(), FollowedAt: enrolledAt.UTC(), StartedAt: time.Now().UTC(),
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
	return s.Signal(ctx, friend, workflows.FriendEvent{Type: workflows.EventUnfollow, At: at.UTC()}, "")
}

// Event records something a friend did (a click, a postback, a web event)
// and signals it to their running enrollments; it reports whether the
// event is new. An event whose SourceKey was recorded before is the same
// event applied or reported again (a retry after a partial failure, the
// inbox replaying events it applied and had not yet marked): it is
// signalled again, with the same request ID, so that runs that already
// had it do not get it twice and runs that missed it get it now.
func (s *Service) Event(ctx context.Context, f *models.Friend, ev *models.FriendEvent) (bool, error) {
	ev.ChannelID, ev.FriendID = f.ChannelID, f.ID
	isNew, err := s.Store.RecordEvent(ctx, ev)
	if err != nil {
		return false, err
	}
	return isNew, s.Signal(ctx, f, activities.ToEvent(ev), fmt.Sprintf("friend-event-%d", ev.ID))
}

// Control tells every running enrollment of a scenario that it was paused,
// resumed or ended. Enrollments also check the scenario's status before
// each send, so one that misses the signal still holds or ends in time.
func (s *Service) Control(ctx context.Context, scenarioID uint, channelID uint, action string) error {
	for offset := 0; ; offset += 500 {
		es, err := s.Store.Enrollments(ctx, models.EnrollmentFilter{ChannelID: channelID, ScenarioID: scenarioID,
			Status: models.EnrollmentRunning}, models.Page{Limit: 500, Offset: offset})
		if err != nil {
			return err
		}
		if err := s.signalAll(ctx, es, workflows.SignalControl, workflows.Control{Action: action}); err != nil {
			return err
		}
		if len(es) < 500 {
			return nil
		}
	}
}

// ChatMessage applies the channel's keyword rules to a friend's chat
// message, the webhook event eventID: matching rules tag the friend. The
// text itself is not stored.
func (s *Service) ChatMessage(ctx context.Context, channelID uint, userID, eventID, text string, at time.Time) error {
	f, err := s.Store.Friend(ctx, channelID, userID)
	if stepcast.ErrorCode(err) == stepcast.ENOTFOUND {
		return nil // not a friend Stepcast knows (added before it ran)
	}
	if err != nil {
		return err
	}
	rules, err := s.Store.KeywordRules(ctx, channelID)
	if err != nil {
		return err
	}
	var tags []string
	for _, r := range rules {
		if r.Matches(text) && !slices.Contains(tags, r.Tag) {
			tags = append(tags, r.Tag)
		}
	}
	if err := s.Store.AddTags(ctx, f.ID, tags); err != nil {
		return err
	}
	props, _ := json.Marshal(map[string]string{"tags": strings.Join(tags, ",")})
	_, err = s.Event(ctx, f, &models.FriendEvent{Type: scenario.EventMessage, Props: string(props), At: at,
		SourceKey: models.SourceKey(models.SourceLINE, eventID)})
	return err
}

// Postback records a postback (a button's data), the webhook event
// eventID, and signals it.
func (s *Service) Postback(ctx context.Context, channelID uint, userID, eventID, data string, at time.Time) error {
	f, err := s.Store.Friend(ctx, channelID, userID)
	if stepcast.ErrorCode(err) == stepcast.ENOTFOUND {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = s.Event(ctx, f, &models.FriendEvent{Type: scenario.EventPostback, Name: data, At: at,
		SourceKey: models.SourceKey(models.SourceLINE, eventID)})
	return err
}

// RouteWindow is how long after a follow an add route still counts for
// the follow's start conditions: a route set through the API a few
// seconds or minutes after the follow webhook (the shop's page reports it
// after the person added the account) enrolls the friend as if it had come
// with the follow, counting the scenario's days from the follow.
const RouteWindow = 10 * time.Minute

// SetRoute records a friend's add route. Within RouteWindow of the follow,
// scenarios that start on a follow from that route enroll the friend now.
func (s *Service) SetRoute(ctx context.Context, f *models.Friend, route string, at time.Time) error {
	if err := s.Store.SetRoute(ctx, f.ID, route, at); err != nil {
		return err
	}
	f.AddRoute = route
	if f.Status != models.FriendFollowing || at.Sub(f.LastFollowedAt) > RouteWindow || at.Before(f.LastFollowedAt) {
		return nil
	}
	scs, err := s.Store.ActiveScenarios(ctx, f.ChannelID)
	if err != nil {
		return err
	}
	for _, sc := range scs {
		doc, err := s.document(&sc.Version)
		if err != nil {
			return err
		}
		if doc.Start.Type != scenario.StartFollow || !slices.Contains(doc.Start.Routes, route) {
			continue
		}
		err = s.enroll(ctx, &sc.Scenario, sc.Version.Version, doc, f, f.LastFollowedAt, false)
		if err != nil && stepcast.ErrorCode(err) != stepcast.ECONFLICT {
			return err
		}
	}
	return nil
}

var _ activities.Enroller = (*Service)(nil)

// EnrollAudienceMembers enrolls those of the friends who are in the
// scenario's start audience, in the given version.
func (s *Service) EnrollAudienceMembers(ctx context.Context, scenarioID uint, version int, friendIDs []uint) (int, string, error) {
	sc, err := s.Store.Scenario(ctx, scenarioID)
	if err != nil {
		return 0, "", err
	}
	if sc.Status != models.ScenarioActive {
		return 0, sc.Status, nil
	}
	v, err := s.Store.ScenarioVersion(ctx, scenarioID, version)
	if err != nil {
		return 0, "", err
	}
	doc, err := scenario.Parse([]byte(v.Document))
	if err != nil {
		return 0, "", err
	}
	facts := &activities.Activities{Store: s.Store}
	enrolled := 0
	for _, id := range friendIDs {
		f, err := s.Store.FriendByID(ctx, id)
		if err != nil {
			return enrolled, sc.Status, err
		}
		in, err := facts.InAudience(ctx, sc.ChannelID, doc.Start.Audience, f, time.Time{}, 0)
		if err != nil {
			return enrolled, sc.Status, err
		}
		if !in {
			continue
		}
		switch err := s.Enroll(ctx, sc, version, doc, f); {
		case err == nil:
			enrolled++
		case stepcast.ErrorCode(err) != stepcast.ECONFLICT:
			return enrolled, sc.Status, err
		}
	}
	return enrolled, sc.Status, nil
}

// StartAudienceEnrollment starts the bulk job that enrolls the existing
// members of an audience-start scenario's audience, once per version.
func (s *Service) StartAudienceEnrollment(ctx context.Context, sc *models.Scenario, version int, doc *scenario.Document) error {
	if doc.Start.Type != scenario.StartAudience {
		return nil
	}
	wid := workflows.AudienceEnrollmentWorkflowID(sc.ChannelID, sc.Key, version)
	_, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: wid, TaskQueue: s.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
	}, workflows.AudienceEnrollmentWorkflow, workflows.AudienceEnrollmentInput{
		ChannelID: sc.ChannelID, ScenarioID: sc.ID, Version: version, PerSecond: doc.Start.EnrollRate,
	})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &started) {
		return stepcast.Errorf(stepcast.EUNAVAILABLE, "start %s: %v", wid, err)
	}
	return nil
}

// RecheckChannel tells every running enrollment of a channel that its
// delivery settings changed, so steps held for the budget ask again.
func (s *Service) RecheckChannel(ctx context.Context, channelID uint) error {
	for offset := 0; ; offset += 500 {
		es, err := s.Store.RunningEnrollmentsOfChannel(ctx, channelID, models.Page{Limit: 500, Offset: offset})
		if err != nil {
			return err
		}
		if err := s.signalAll(ctx, es, workflows.SignalControl, workflows.Control{Action: workflows.ControlRecheck}); err != nil {
			return err
		}
		if len(es) < 500 {
			return nil
		}
	}
}

// signalAll signals each enrollment; ones that have ended are skipped.
func (s *Service) signalAll(ctx context.Context, es []models.Enrollment, name string, arg any) error {
	for _, e := range es {
		err := s.Temporal.SignalWorkflow(ctx, e.WorkflowID, e.RunID, name, arg)
		var nf *serviceerror.NotFound
		if err != nil && !errors.As(err, &nf) {
			return stepcast.Errorf(stepcast.EUNAVAILABLE, "signal %s: %v", e.WorkflowID, err)
		}
	}
	return nil
}

// Signal sends an event to each of the friend's running enrollments. A run
// that has already ended is recorded as such. A run drops a signal whose
// requestID it already had; an empty requestID is a new one.
func (s *Service) Signal(ctx context.Context, f *models.Friend, ev workflows.FriendEvent, requestID string) error {
	es, err := s.Store.RunningEnrollmentsOfFriend(ctx, f.ID)
	if err != nil {
		return err
	}
	for _, e := range es {
		err := s.signal(ctx, e.WorkflowID, e.RunID, ev, requestID)
		var nf *serviceerror.NotFound
		switch {
		case errors.As(err, &nf):
			if err := s.Store.FinishEnrollment(ctx, e, models.EnrollmentCompleted, "", time.Now()); err != nil {
				return err
			}
		case err != nil:
			return stepcast.Errorf(stepcast.EUNAVAILABLE, "signal %s: %v", e.WorkflowID, err)
		}
	}
	return nil
}

// signal signals ev to one run. Temporal keeps the request IDs of a run's
// signals and drops a signal whose ID it has; the SDK's SignalWorkflow
// makes a new ID on every call, so a signal that must reach a run once
// goes through the service API with an ID of its own.
func (s *Service) signal(ctx context.Context, workflowID, runID string, ev workflows.FriendEvent, requestID string) error {
	if requestID == "" {
		return s.Temporal.SignalWorkflow(ctx, workflowID, runID, workflows.SignalFriendEvent, ev)
	}
	input, err := converter.GetDefaultDataConverter().ToPayloads(ev)
	if err != nil {
		return err
	}
	ns := s.Namespace
	if ns == "" {
		ns = "default"
	}
	// The SDK's own calls have this deadline.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = s.Temporal.WorkflowService().SignalWorkflowExecution(ctx, &workflowservice.SignalWorkflowExecutionRequest{
		Namespace:         ns,
		WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: workflowID, RunId: runID},
		SignalName:        workflows.SignalFriendEvent,
		Input:             input,
		Identity:          identity,
		RequestId:         requestID,
	})
	return err
}

// identity names this process in the signals' history events, as the
// SDK's client does.
var identity = func() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%d@%s@", os.Getpid(), host)
}()
