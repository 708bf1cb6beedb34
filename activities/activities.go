// Package activities is where workflows touch the world: the database and
// LINE. Activities are methods on one struct that holds the dependencies; the
// workflow package refers to them through a nil *Activities.
package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"

	"github.com/stepcast/stepcast/links"
	"github.com/stepcast/stepcast/metrics"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/scenario"
)

// Activities holds what activities need.
type Activities struct {
	Store   *models.Store
	LINE    LINE
	Metrics *metrics.Metrics
	// Links turns URLs in messages into tracked links; nil leaves them.
	Links *links.Rewriter
	// Enroller runs bulk enrollments.
	Enroller Enroller

	// rate holds this process's push tokens.
	rate rateTokens
}

// Step is a message node reached by one enrollment: what is pushed, to
// whom, under which retry key.
type Step struct {
	ChannelID   uint
	ScenarioID  uint
	ScenarioKey string
	FriendID    uint
	UserID      string
	NodeID      string
	// StepKey names this visit of the node within the run; with the run it
	// makes the retry key, so every attempt of the step has the same key.
	StepKey  string
	Messages []json.RawMessage
	// Now is the workflow's time when the step was tried.
	Now time.Time
}

// SendStepInput is a step whose budget the gate has already reserved.
type SendStepInput struct {
	Step
	// BudgetMonth is where the gate reserved the messages from.
	BudgetMonth string
}

// SendStepResult says what became of the step.
type SendStepResult struct {
	// Outcome is one of the metrics.Send* outcomes.
	Outcome string
	Reason  string `json:",omitempty"`
}

// retryKeySpace makes retry keys Stepcast's own UUIDv5 namespace.
var retryKeySpace = uuid.MustParse("4c1b7e2a-3f0d-5b8e-9a61-7d2c5e8f1a90")

// RetryKey is the X-Line-Retry-Key of one step of one run: the same on every
// attempt, different for every step, run and re-enrollment.
func RetryKey(workflowID, runID, stepKey string) string {
	return uuid.NewSHA1(retryKeySpace, []byte(workflowID+"\x00"+runID+"\x00"+stepKey)).String()
}

// SendStep pushes a step that Gate let go, for enrollments that started
// before Deliver took the place of the two (their histories replay them).
func (a *Activities) SendStep(ctx context.Context, in SendStepInput) (SendStepResult, error) {
	friend, err := a.Store.FriendByID(ctx, in.FriendID)
	if err != nil {
		return SendStepResult{}, err
	}
	d := newDelivery(ctx, in.Step)
	d.BudgetMonth = in.BudgetMonth
	d, _, err = a.Store.BeginDelivery(ctx, d, nil)
	if err != nil {
		return SendStepResult{}, err
	}
	ch, err := a.Store.Channel(ctx, in.ChannelID)
	if err != nil {
		return SendStepResult{}, err
	}
	return a.push(ctx, in.Step, d, ch, friend)
}

// newDelivery is the delivery row of a step of the calling workflow run.
func newDelivery(ctx context.Context, s Step) *models.Delivery {
	run := activity.GetInfo(ctx).WorkflowExecution
	return &models.Delivery{
		ChannelID: s.ChannelID, ScenarioID: s.ScenarioID, FriendID: s.FriendID,
		WorkflowID: run.ID, RunID: run.RunID, NodeID: s.NodeID,
		RetryKey: RetryKey(run.ID, run.RunID, s.StepKey), MessageCount: len(s.Messages),
	}
}

// push sends a begun step to the friend, at most once.
//
// The delivery row keyed by the retry key was written before the push, so a
// step already sent is never pushed again even after LINE has forgotten the
// key; LINE's 409 for a key it has seen counts as sent. A blocked friend is
// not pushed to at all. Whatever LINE refuses gives its budget back.
func (a *Activities) push(ctx context.Context, s Step, d *models.Delivery, ch *models.Channel, friend *models.Friend) (SendStepResult, error) {
	log := activity.GetLogger(ctx)
	switch d.Status {
	case models.DeliverySent:
		return a.outcome(metrics.SendDuplicate, "already sent"), nil
	case models.DeliveryFailed, models.DeliverySkipped:
		return a.outcome(d.Status, d.Error), nil
	}
	if friend.Status == models.FriendBlocked {
		d.Status, d.Error = models.DeliverySkipped, "friend blocked the account"
		if err := a.finish(ctx, d, nil, true); err != nil {
			return SendStepResult{}, err
		}
		return a.outcome(metrics.SendSkipped, d.Error), nil
	}
	msgs, err := a.personalize(ctx, ch, friend, s.Messages)
	if err != nil {
		return SendStepResult{}, err
	}
	if a.Links != nil {
		msgs, err = a.Links.Rewrite(ctx, msgs, friend.ID, func(ctx context.Context, url string) (uint, error) {
			return a.Store.TrackedLinkID(ctx, ch.ID, s.ScenarioID, s.NodeID, url)
		})
		if err != nil {
			return SendStepResult{}, err
		}
	}

	if err := a.waitForRate(ctx, ch); err != nil {
		return SendStepResult{}, err
	}
	requestID, err := a.LINE.Push(ctx, ch.AccessToken, friend.UserID, msgs, d.RetryKey)
	now := s.Now.UTC()
	if now.IsZero() {
		now = time.Now().UTC()
	}
	var le *LineError
	switch {
	case err == nil:
		d.Status, d.LineRequestID, d.SentAt = models.DeliverySent, requestID, &now
	case errors.As(err, &le) && le.Status == http.StatusConflict:
		d.Status, d.LineRequestID, d.SentAt = models.DeliverySent, le.AcceptedRequestID, &now
		if err := a.finish(ctx, d, nil, false); err != nil {
			return SendStepResult{}, err
		}
		return a.outcome(metrics.SendDuplicate, "LINE had already accepted this retry key"), nil
	case errors.As(err, &le) && le.MonthlyLimit():
		// Not a failure of this step: the channel is out of messages until
		// LINE's month turns. The gate holds every step of the channel
		// until then; this one is begun again then, with the same key.
		log.Warn("LINE monthly limit reached; the channel's steps hold", "channel", s.ChannelID, "node", s.NodeID)
		if err := a.Store.MarkLineQuotaReached(ctx, s.ChannelID, models.Month(s.Now.In(channelLocation(ch)))); err != nil {
			return SendStepResult{}, err
		}
		d.Status = models.DeliveryHeld
		if err := a.finish(ctx, d, nil, true); err != nil {
			return SendStepResult{}, err
		}
		return a.outcome(metrics.SendHeld, HoldBudget), nil
	case errors.As(err, &le) && le.Status != http.StatusTooManyRequests && le.Status < 500:
		// LINE will refuse this request however often it is sent.
		d.Status, d.Error = models.DeliveryFailed, le.Error()
		log.Error("LINE refused the step", "channel", s.ChannelID, "node", s.NodeID, "status", le.Status, "error", le.Message)
		if err := a.finish(ctx, d, nil, true); err != nil {
			return SendStepResult{}, err
		}
		return a.outcome(metrics.SendFailed, d.Error), nil
	default:
		a.count(metrics.SendRetry)
		return SendStepResult{}, fmt.Errorf("push step %s: %w", s.NodeID, err)
	}
	// An impression in the only sense LINE allows: the push was accepted.
	delivered := &models.FriendEvent{ChannelID: s.ChannelID, FriendID: s.FriendID,
		Type: scenario.EventDelivered, ScenarioKey: s.ScenarioKey, NodeID: s.NodeID, At: now}
	if err := a.finish(ctx, d, delivered, false); err != nil {
		// The push went out; the retry sees the same key and LINE's 409.
		return SendStepResult{}, err
	}
	return a.outcome(metrics.SendSent, ""), nil
}

// finish stores the delivery's outcome, first giving its budget back when
// nothing was sent.
func (a *Activities) finish(ctx context.Context, d *models.Delivery, delivered *models.FriendEvent, release bool) error {
	if release && d.BudgetMonth != "" {
		if err := a.Store.ReleaseBudget(ctx, d.ChannelID, d.BudgetMonth, int64(d.MessageCount)); err != nil {
			return err
		}
		d.BudgetMonth = ""
	}
	return a.Store.FinishDelivery(ctx, d, delivered)
}

func channelLocation(ch *models.Channel) *time.Location {
	if loc, err := time.LoadLocation(ch.TimeZone); err == nil {
		return loc
	}
	loc, _ := time.LoadLocation(scenario.DefaultTimeZone)
	return loc
}

func (a *Activities) outcome(outcome, reason string) SendStepResult {
	a.count(outcome)
	return SendStepResult{Outcome: outcome, Reason: reason}
}

func (a *Activities) count(outcome string) {
	if a.Metrics != nil {
		a.Metrics.Sends.WithLabelValues(outcome).Inc()
	}
}

// displayNamePlaceholder is replaced in message JSON by the friend's LINE
// display name.
const displayNamePlaceholder = "{{displayName}}"

// NeedsDisplayName reports whether messages use the display name.
func NeedsDisplayName(msgs []json.RawMessage) bool {
	for _, m := range msgs {
		if strings.Contains(string(m), displayNamePlaceholder) {
			return true
		}
	}
	return false
}

// Personalize fills the per-friend placeholders. The name goes into JSON
// strings, so it is escaped as one.
func Personalize(msgs []json.RawMessage, displayName string) []json.RawMessage {
	quoted, _ := json.Marshal(displayName)
	escaped := string(quoted[1 : len(quoted)-1])
	out := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		out[i] = json.RawMessage(strings.ReplaceAll(string(m), displayNamePlaceholder, escaped))
	}
	return out
}

// personalize fills placeholders, fetching the display name from LINE's
// profile API the first time it is needed.
func (a *Activities) personalize(ctx context.Context, ch *models.Channel, f *models.Friend, msgs []json.RawMessage) ([]json.RawMessage, error) {
	if !NeedsDisplayName(msgs) {
		return msgs, nil
	}
	name, err := DisplayName(ctx, a.Store, a.LINE, ch, f)
	if err != nil {
		return nil, err
	}
	return Personalize(msgs, name), nil
}

// DisplayName returns the friend's display name, asking LINE's profile API
// and storing the answer when it is not known yet.
func DisplayName(ctx context.Context, store *models.Store, line LINE, ch *models.Channel, f *models.Friend) (string, error) {
	if f.DisplayName != "" {
		return f.DisplayName, nil
	}
	name, err := line.Profile(ctx, ch.AccessToken, f.UserID)
	if err != nil {
		return "", fmt.Errorf("fetch display name: %w", err)
	}
	if err := store.SetDisplayName(ctx, f.ID, name); err != nil {
		return "", err
	}
	f.DisplayName = name
	return name, nil
}

// FinishEnrollmentInput is how an enrollment ended, and what its row
// needs if the run ends before the row was written.
type FinishEnrollmentInput struct {
	Status     string
	Reason     string
	ChannelID  uint
	ScenarioID uint
	Version    int
	FriendID   uint
	FollowedAt time.Time
	StartedAt  time.Time
}

// FinishEnrollment records the end of the calling workflow's run.
func (a *Activities) FinishEnrollment(ctx context.Context, in FinishEnrollmentInput) error {
	run := activity.GetInfo(ctx).WorkflowExecution
	return a.Store.FinishEnrollment(ctx, models.Enrollment{
		ChannelID: in.ChannelID, ScenarioID: in.ScenarioID, ScenarioVersion: in.Version, FriendID: in.FriendID,
		WorkflowID: run.ID, RunID: run.RunID, FollowedAt: in.FollowedAt.UTC(), StartedAt: in.StartedAt.UTC(),
	}, in.Status, in.Reason, time.Now())
}
