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
}

// SendStepInput is one message node reached by one enrollment.
type SendStepInput struct {
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
	// BudgetMonth is where the gate reserved the messages from.
	BudgetMonth string
	// Now is the workflow's time when the step was sent.
	Now time.Time
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

// SendStep pushes a node's messages to the friend, at most once per step.
//
// The delivery row keyed by the retry key is written before the push, so a
// step already sent is never pushed again even after LINE has forgotten the
// key; LINE's 409 for a key it has seen counts as sent. A blocked friend is
// not pushed to at all.
func (a *Activities) SendStep(ctx context.Context, in SendStepInput) (SendStepResult, error) {
	info := activity.GetInfo(ctx)
	log := activity.GetLogger(ctx)
	key := RetryKey(info.WorkflowExecution.ID, info.WorkflowExecution.RunID, in.StepKey)

	friend, err := a.Store.FriendByID(ctx, in.FriendID)
	if err != nil {
		return SendStepResult{}, err
	}
	d, err := a.Store.BeginDelivery(ctx, &models.Delivery{
		ChannelID: in.ChannelID, ScenarioID: in.ScenarioID, FriendID: in.FriendID,
		WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID,
		NodeID: in.NodeID, RetryKey: key, MessageCount: len(in.Messages),
	})
	if err != nil {
		return SendStepResult{}, err
	}
	switch d.Status {
	case models.DeliverySent:
		return a.outcome(metrics.SendDuplicate, "already sent"), nil
	case models.DeliveryFailed, models.DeliverySkipped:
		return a.outcome(d.Status, d.Error), nil
	}
	if friend.Status == models.FriendBlocked {
		d.Status, d.Error = models.DeliverySkipped, "friend blocked the account"
		if err := a.Store.FinishDelivery(ctx, d); err != nil {
			return SendStepResult{}, err
		}
		return a.outcome(metrics.SendSkipped, d.Error), nil
	}
	ch, err := a.Store.Channel(ctx, in.ChannelID)
	if err != nil {
		return SendStepResult{}, err
	}
	msgs, err := a.personalize(ctx, ch, friend, in.Messages)
	if err != nil {
		return SendStepResult{}, err
	}
	if a.Links != nil {
		msgs, err = a.Links.Rewrite(ctx, msgs, friend.ID, func(ctx context.Context, url string) (uint, error) {
			return a.Store.TrackedLinkID(ctx, ch.ID, in.ScenarioID, in.NodeID, url)
		})
		if err != nil {
			return SendStepResult{}, err
		}
	}

	if err := a.waitForRate(ctx, ch); err != nil {
		return SendStepResult{}, err
	}
	requestID, err := a.LINE.Push(ctx, ch.AccessToken, friend.UserID, msgs, key)
	now := in.Now.UTC()
	if now.IsZero() {
		now = time.Now().UTC()
	}
	var le *LineError
	switch {
	case err == nil:
		d.Status, d.LineRequestID, d.SentAt = models.DeliverySent, requestID, &now
	case errors.As(err, &le) && le.Status == http.StatusConflict:
		d.Status, d.LineRequestID, d.SentAt = models.DeliverySent, le.AcceptedRequestID, &now
		if err := a.Store.FinishDelivery(ctx, d); err != nil {
			return SendStepResult{}, err
		}
		return a.outcome(metrics.SendDuplicate, "LINE had already accepted this retry key"), nil
	case errors.As(err, &le) && le.MonthlyLimit():
		// Not a failure of this step: the channel is out of messages until
		// LINE's month turns. The gate holds every step of the channel
		// until then; this one is tried again, with the same key.
		log.Warn("LINE monthly limit reached; the channel's steps hold", "channel", in.ChannelID, "node", in.NodeID)
		if err := a.Store.MarkLineQuotaReached(ctx, in.ChannelID, models.Month(in.Now.In(channelLocation(ch)))); err != nil {
			return SendStepResult{}, err
		}
		if err := a.release(ctx, in); err != nil {
			return SendStepResult{}, err
		}
		return a.outcome(metrics.SendHeld, HoldBudget), nil
	case errors.As(err, &le) && le.Status != http.StatusTooManyRequests && le.Status < 500:
		// LINE will refuse this request however often it is sent.
		d.Status, d.Error = models.DeliveryFailed, le.Error()
		log.Error("LINE refused the step", "channel", in.ChannelID, "node", in.NodeID, "status", le.Status, "error", le.Message)
		if err := a.release(ctx, in); err != nil {
			return SendStepResult{}, err
		}
	default:
		a.count(metrics.SendRetry)
		return SendStepResult{}, fmt.Errorf("push step %s: %w", in.NodeID, err)
	}
	if err := a.Store.FinishDelivery(ctx, d); err != nil {
		// The push went out; the retry sees the same key and LINE's 409.
		return SendStepResult{}, err
	}
	if d.Status == models.DeliveryFailed {
		return a.outcome(metrics.SendFailed, d.Error), nil
	}
	// An impression in the only sense LINE allows: the push was accepted.
	err = a.Store.RecordEvent(ctx, &models.FriendEvent{ChannelID: in.ChannelID, FriendID: in.FriendID,
		Type: scenario.EventDelivered, ScenarioKey: in.ScenarioKey, NodeID: in.NodeID, At: now})
	if err != nil {
		return SendStepResult{}, err
	}
	return a.outcome(metrics.SendSent, ""), nil
}

// release gives back the step's budget reservation.
func (a *Activities) release(ctx context.Context, in SendStepInput) error {
	if in.BudgetMonth == "" {
		return nil
	}
	return a.Store.ReleaseBudget(ctx, in.ChannelID, in.BudgetMonth, int64(len(in.Messages)))
}

// waitForRate takes a token of the channel's per-second push limit, shared
// by all workers through the database, waiting for the next second when
// this one is full.
func (a *Activities) waitForRate(ctx context.Context, ch *models.Channel) error {
	limit := ch.RateLimit
	if limit <= 0 {
		limit = models.LinePushRateLimit
	}
	for {
		now := time.Now()
		ok, err := a.Store.TakeRateToken(ctx, ch.ID, now.Unix(), limit)
		if err != nil {
			return err
		}
		if ok {
			// Old windows are of no use; once a minute, whoever is sending
			// clears them (several workers doing it at once is harmless).
			if now.Unix()%60 == 0 {
				_ = a.Store.PruneRateWindows(ctx, now.Unix()-60)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(now.Truncate(time.Second).Add(time.Second))):
		}
	}
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

// FinishEnrollmentInput is how an enrollment ended.
type FinishEnrollmentInput struct {
	Status string
	Reason string
}

// FinishEnrollment records the end of the calling workflow's run.
func (a *Activities) FinishEnrollment(ctx context.Context, in FinishEnrollmentInput) error {
	info := activity.GetInfo(ctx)
	return a.Store.FinishEnrollment(ctx, info.WorkflowExecution.ID, info.WorkflowExecution.RunID, in.Status, in.Reason, time.Now())
}
