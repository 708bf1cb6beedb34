package activities_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/stepcast/stepcast/activities"
	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/metrics"
	"github.com/stepcast/stepcast/models"
)

// The IDs the Temporal test environments give the calling workflow.
const (
	testWorkflowID = "default-test-workflow-id"
	testRunID      = "default-test-run-id"
)

// recordingLINE is an activities.LINE that records every push attempt and
// answers with push (or accepts when push is nil).
type recordingLINE struct {
	mu       sync.Mutex
	pushes   []recordedPush
	profiles int
	push     func(retryKey string) (string, error)
	profile  func(userID string) (string, error)
}

type recordedPush struct {
	Token, To, RetryKey string
	Messages            []json.RawMessage
}

var _ activities.LINE = (*recordingLINE)(nil)

func (l *recordingLINE) Push(_ context.Context, token, to string, messages []json.RawMessage, retryKey string) (string, error) {
	l.mu.Lock()
	l.pushes = append(l.pushes, recordedPush{Token: token, To: to, RetryKey: retryKey, Messages: messages})
	l.mu.Unlock()
	if l.push != nil {
		return l.push(retryKey)
	}
	return "req-" + retryKey[:8], nil
}

func (l *recordingLINE) Profile(_ context.Context, _, userID string) (string, error) {
	l.mu.Lock()
	l.profiles++
	l.mu.Unlock()
	if l.profile != nil {
		return l.profile(userID)
	}
	return "Taro", nil
}

func (l *recordingLINE) Pushes() []recordedPush {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]recordedPush(nil), l.pushes...)
}

type fixture struct {
	store   *models.Store
	line    *recordingLINE
	acts    *activities.Activities
	env     *testsuite.TestActivityEnvironment
	channel *models.Channel
	friend  *models.Friend
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureOn(t, testenv.SQLite(t))
}

// newFixtureOn is newFixture on the given (empty, migrated) database.
func newFixtureOn(t *testing.T, store *models.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	ch := &models.Channel{Name: "Shop", LineChannelID: "1650000000", Secret: "secret", AccessToken: "channel-token", TimeZone: "Asia/Tokyo"}
	require.NoError(t, store.CreateChannel(ctx, ch))
	friend, _, err := store.ApplyFollow(ctx, ch.ID, "Ufriend1", time.Date(2026, 1, 30, 6, 0, 0, 0, time.UTC))
	require.NoError(t, err)

	line := &recordingLINE{}
	acts := &activities.Activities{Store: store, LINE: line, Metrics: metrics.New()}
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(testenv.Logger()))
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return &fixture{store: store, line: line, acts: acts, env: env, channel: ch, friend: friend}
}

func (f *fixture) input(nodeID, stepKey string, msgs ...string) activities.SendStepInput {
	raw := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		raw[i] = json.RawMessage(m)
	}
	return activities.SendStepInput{Step: activities.Step{
		ChannelID: f.channel.ID, ScenarioID: 7, FriendID: f.friend.ID, UserID: f.friend.UserID,
		NodeID: nodeID, StepKey: stepKey, Messages: raw,
	}}
}

func (f *fixture) send(t *testing.T, in activities.SendStepInput) (activities.SendStepResult, error) {
	t.Helper()
	v, err := f.env.ExecuteActivity(f.acts.SendStep, in)
	if err != nil {
		return activities.SendStepResult{}, err
	}
	var res activities.SendStepResult
	require.NoError(t, v.Get(&res))
	return res, nil
}

// sends is the value of the stepcast_sends_total counter for outcome.
func (f *fixture) sends(t *testing.T, outcome string) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, f.acts.Metrics.Sends.WithLabelValues(outcome).Write(&m))
	return m.GetCounter().GetValue()
}

func (f *fixture) gate(t *testing.T, in activities.GateInput) activities.GateResult {
	t.Helper()
	v, err := f.env.ExecuteActivity(f.acts.Gate, in)
	require.NoError(t, err)
	var g activities.GateResult
	require.NoError(t, v.Get(&g))
	return g
}

var tokyo = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		panic(err)
	}
	return loc
}()

func jst(year int, month time.Month, day, hour, minute int) time.Time {
	return time.Date(year, month, day, hour, minute, 0, 0, tokyo)
}

func (f *fixture) delivery(t *testing.T, key string) models.Delivery {
	t.Helper()
	var d models.Delivery
	require.NoError(t, f.store.DB.Where("retry_key = ?", key).First(&d).Error)
	return d
}

const hello = `{"type":"text","text":"hello"}`

func TestSendStepSends(t *testing.T) {
	f := newFixture(t)
	res, err := f.send(t, f.input("m1", "m1#1", hello))
	require.NoError(t, err)
	require.Equal(t, metrics.SendSent, res.Outcome)

	key := activities.RetryKey(testWorkflowID, testRunID, "m1#1")
	pushes := f.line.Pushes()
	require.Len(t, pushes, 1)
	require.Equal(t, key, pushes[0].RetryKey, "the retry key is made from the calling run and the step key")
	require.Equal(t, "channel-token", pushes[0].Token)
	require.Equal(t, "Ufriend1", pushes[0].To)
	require.Equal(t, hello, string(pushes[0].Messages[0]))

	d := f.delivery(t, key)
	require.Equal(t, models.DeliverySent, d.Status)
	require.Equal(t, 1, d.Attempts)
	require.Equal(t, "req-"+key[:8], d.LineRequestID)
	require.NotNil(t, d.SentAt)
	require.Equal(t, testWorkflowID, d.WorkflowID)
	require.Equal(t, testRunID, d.RunID)
	require.Equal(t, "m1", d.NodeID)
	require.Equal(t, 1, d.MessageCount)
	require.Equal(t, 1.0, f.sends(t, metrics.SendSent))
}

// TestSendStepNeverPushesASentStepAgain: once the delivery row says sent, a
// later attempt (a worker restarted long after LINE forgot the retry key)
// does not push again.
func TestSendStepNeverPushesASentStepAgain(t *testing.T) {
	f := newFixture(t)
	_, err := f.send(t, f.input("m1", "m1#1", hello))
	require.NoError(t, err)
	f.line.push = func(string) (string, error) { return "req-second", nil } // LINE would accept a forgotten key

	res, err := f.send(t, f.input("m1", "m1#1", hello))
	require.NoError(t, err)
	require.Equal(t, metrics.SendDuplicate, res.Outcome)
	require.Len(t, f.line.Pushes(), 1, "no second push")
	d := f.delivery(t, activities.RetryKey(testWorkflowID, testRunID, "m1#1"))
	require.Equal(t, models.DeliverySent, d.Status)
	require.Equal(t, 2, d.Attempts)
	require.Equal(t, 1.0, f.sends(t, metrics.SendDuplicate))
}

func TestSendStepConflictCountsAsSent(t *testing.T) {
	f := newFixture(t)
	f.line.push = func(string) (string, error) {
		return "", &activities.LineError{Status: http.StatusConflict, Message: "already accepted", AcceptedRequestID: "accepted-1"}
	}
	res, err := f.send(t, f.input("m1", "m1#1", hello))
	require.NoError(t, err)
	require.Equal(t, metrics.SendDuplicate, res.Outcome)
	d := f.delivery(t, activities.RetryKey(testWorkflowID, testRunID, "m1#1"))
	require.Equal(t, models.DeliverySent, d.Status)
	require.Equal(t, "accepted-1", d.LineRequestID)
}

func TestSendStepSkipsABlockedFriend(t *testing.T) {
	f := newFixture(t)
	_, _, err := f.store.ApplyUnfollow(context.Background(), f.channel.ID, f.friend.UserID, time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)

	res, err := f.send(t, f.input("m1", "m1#1", hello))
	require.NoError(t, err)
	require.Equal(t, metrics.SendSkipped, res.Outcome)
	require.Empty(t, f.line.Pushes())
	d := f.delivery(t, activities.RetryKey(testWorkflowID, testRunID, "m1#1"))
	require.Equal(t, models.DeliverySkipped, d.Status)
	require.Nil(t, d.SentAt)
}

func TestSendStepRefusedIsFailed(t *testing.T) {
	f := newFixture(t)
	f.line.push = func(string) (string, error) {
		return "", &activities.LineError{Status: http.StatusBadRequest, Message: "The request body has 1 error(s)"}
	}
	res, err := f.send(t, f.input("m1", "m1#1", hello))
	require.NoError(t, err, "a refusal is not retried")
	require.Equal(t, metrics.SendFailed, res.Outcome)
	d := f.delivery(t, activities.RetryKey(testWorkflowID, testRunID, "m1#1"))
	require.Equal(t, models.DeliveryFailed, d.Status)
	require.Contains(t, d.Error, "400")
	require.Nil(t, d.SentAt)

	// A later attempt of the same step does not push again.
	res, err = f.send(t, f.input("m1", "m1#1", hello))
	require.NoError(t, err)
	require.Equal(t, metrics.SendFailed, res.Outcome)
	require.Len(t, f.line.Pushes(), 1)
}

func TestSendStepTransientErrorsAreRetried(t *testing.T) {
	for name, lineErr := range map[string]error{
		"server error": &activities.LineError{Status: http.StatusInternalServerError, Message: "oops"},
		"rate limit":   &activities.LineError{Status: http.StatusTooManyRequests, Message: "The API rate limit has been exceeded."},
		"network":      errors.New("connection reset by peer"),
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.line.push = func(string) (string, error) { return "", lineErr }
			_, err := f.send(t, f.input("m1", "m1#1", hello))
			require.Error(t, err)
			var appErr *temporal.ApplicationError
			require.True(t, errors.As(err, &appErr), "%T %v", err, err)
			require.False(t, appErr.NonRetryable(), "a transient failure is retried")
			require.Equal(t, 1.0, f.sends(t, metrics.SendRetry))
			require.Equal(t, models.DeliverySending, f.delivery(t, activities.RetryKey(testWorkflowID, testRunID, "m1#1")).Status,
				"the row stays sending, so the retry pushes with the same key")
		})
	}
}

// TestSendStepMonthlyLimitHoldsTheChannel: LINE's 429 "monthly limit" is not
// retried by the activity. SendStep marks the channel as out of LINE's quota
// for the month (in the channel's time zone), gives back the step's budget
// reservation and answers held; the delivery row is "held", so the step's
// next attempt (after the gate lets it go) begins it again with the same key.
func TestSendStepMonthlyLimitHoldsTheChannel(t *testing.T) {
	tests := []struct {
		name  string
		now   time.Time
		month string
	}{
		{"mid-month", time.Date(2026, 1, 31, 1, 0, 0, 0, time.UTC), "2026-01"},                                // 10:00 JST
		{"UTC still January, JST already February", time.Date(2026, 1, 31, 16, 0, 0, 0, time.UTC), "2026-02"}, // Feb 1 01:00 JST
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			budget := int64(10)
			ch, err := f.store.UpdateChannel(ctx, f.channel.ID, models.ChannelPatch{MonthlyBudget: &budget})
			require.NoError(t, err)
			ok, err := f.store.ReserveBudget(ctx, ch, tt.month, 2)
			require.NoError(t, err)
			require.True(t, ok)

			f.line.push = func(string) (string, error) {
				return "", &activities.LineError{Status: http.StatusTooManyRequests, Message: "You have reached your monthly limit."}
			}
			in := f.input("m1", "m1#1", hello, hello)
			in.Now, in.BudgetMonth = tt.now, tt.month
			res, err := f.send(t, in)
			require.NoError(t, err, "the monthly limit is not an activity failure (no retries)")
			require.Equal(t, metrics.SendHeld, res.Outcome)
			require.Equal(t, activities.HoldBudget, res.Reason)
			require.Equal(t, 1.0, f.sends(t, metrics.SendHeld))
			require.Zero(t, f.sends(t, metrics.SendRetry))

			ch, err = f.store.Channel(ctx, f.channel.ID)
			require.NoError(t, err)
			require.Equal(t, tt.month, ch.LineQuotaMonth, "the month of the refusal in the channel's time zone")
			used, err := f.store.Usage(ctx, f.channel.ID, tt.month)
			require.NoError(t, err)
			require.Zero(t, used, "the reservation of the step's 2 messages was given back")

			key := activities.RetryKey(testWorkflowID, testRunID, "m1#1")
			d := f.delivery(t, key)
			require.Equal(t, models.DeliveryHeld, d.Status, "not failed: the step will be tried again")
			require.Empty(t, d.BudgetMonth, "nothing reserved while held")
			require.Nil(t, d.SentAt)

			// The gate now holds the channel's steps until the next month.
			sc := &models.Scenario{ChannelID: f.channel.ID, Key: "welcome", Name: "Welcome", Draft: "{}"}
			require.NoError(t, f.store.CreateScenario(ctx, sc))
			g := f.gate(t, activities.GateInput{ChannelID: f.channel.ID, ScenarioID: sc.ID, FriendID: f.friend.ID, Messages: 2, Now: tt.now.Add(time.Hour)})
			require.Equal(t, activities.HoldBudget, g.HoldReason)
			y, m, _ := tt.now.In(tokyo).Date()
			require.True(t, g.HoldUntil.Equal(time.Date(y, m+1, 1, 0, 0, 0, 0, tokyo)), "held until %s", g.HoldUntil.In(tokyo))
			require.Empty(t, g.BudgetMonth, "nothing reserved while held")

			// Next month LINE takes it: one push more, same key, sent.
			f.line.push = nil
			next := time.Date(y, m+1, 1, 0, 0, 0, 0, tokyo)
			g = f.gate(t, activities.GateInput{ChannelID: f.channel.ID, ScenarioID: sc.ID, FriendID: f.friend.ID, Messages: 2, Now: next})
			require.Empty(t, g.HoldReason)
			in.Now, in.BudgetMonth = next, g.BudgetMonth
			res, err = f.send(t, in)
			require.NoError(t, err)
			require.Equal(t, metrics.SendSent, res.Outcome)
			pushes := f.line.Pushes()
			require.Len(t, pushes, 2)
			require.Equal(t, key, pushes[0].RetryKey)
			require.Equal(t, key, pushes[1].RetryKey, "the held step keeps its retry key")
			d = f.delivery(t, key)
			require.Equal(t, models.DeliverySent, d.Status)
			require.Equal(t, 2, d.Attempts)
			require.NotNil(t, d.SentAt)
			require.True(t, d.SentAt.Equal(next), "SentAt is the workflow's time: %s", d.SentAt)
			used, err = f.store.Usage(ctx, f.channel.ID, models.Month(next.In(tokyo)))
			require.NoError(t, err)
			require.Equal(t, int64(2), used)
		})
	}
}

// TestSendStepRefusedReleasesTheBudget: a 400 gives the step's reservation
// back; a sent step keeps it.
func TestSendStepRefusedReleasesTheBudget(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	budget := int64(10)
	ch, err := f.store.UpdateChannel(ctx, f.channel.ID, models.ChannelPatch{MonthlyBudget: &budget})
	require.NoError(t, err)
	for _, n := range []int64{1, 3} {
		ok, err := f.store.ReserveBudget(ctx, ch, "2026-01", n)
		require.NoError(t, err)
		require.True(t, ok)
	}
	now := time.Date(2026, 1, 31, 1, 0, 0, 0, time.UTC)

	sent := f.input("m1", "m1#1", hello)
	sent.Now, sent.BudgetMonth = now, "2026-01"
	res, err := f.send(t, sent)
	require.NoError(t, err)
	require.Equal(t, metrics.SendSent, res.Outcome)

	f.line.push = func(string) (string, error) {
		return "", &activities.LineError{Status: http.StatusBadRequest, Message: "The request body has 1 error(s)"}
	}
	refused := f.input("m2", "m2#2", hello, hello, hello)
	refused.Now, refused.BudgetMonth = now, "2026-01"
	res, err = f.send(t, refused)
	require.NoError(t, err)
	require.Equal(t, metrics.SendFailed, res.Outcome)

	used, err := f.store.Usage(ctx, f.channel.ID, "2026-01")
	require.NoError(t, err)
	require.Equal(t, int64(1), used, "the refused step's 3 messages are back, the sent one's stays")
}

func TestSendStepDisplayName(t *testing.T) {
	f := newFixture(t)
	f.line.profile = func(string) (string, error) { return `Ta"ro <3 \ さん`, nil }

	_, err := f.send(t, f.input("m1", "m1#1",
		`{"type":"text","text":"Hi {{displayName}}! ({{displayName}})"}`,
		`{"type":"sticker","packageId":"446","stickerId":"1988"}`))
	require.NoError(t, err)
	pushes := f.line.Pushes()
	require.Len(t, pushes, 1)
	var m struct{ Text string }
	require.NoError(t, json.Unmarshal(pushes[0].Messages[0], &m), "the pushed message is still JSON: %s", pushes[0].Messages[0])
	require.Equal(t, `Hi Ta"ro <3 \ さん! (Ta"ro <3 \ さん)`, m.Text)
	require.Equal(t, `{"type":"sticker","packageId":"446","stickerId":"1988"}`, string(pushes[0].Messages[1]))

	friend, err := f.store.FriendByID(context.Background(), f.friend.ID)
	require.NoError(t, err)
	require.Equal(t, `Ta"ro <3 \ さん`, friend.DisplayName, "the name is stored")

	// The next step uses the stored name without asking LINE again.
	_, err = f.send(t, f.input("m2", "m2#2", `{"type":"text","text":"Bye {{displayName}}"}`))
	require.NoError(t, err)
	require.Equal(t, 1, f.line.profiles)

	// A message with no placeholder does not ask LINE for a profile at all.
	f2 := newFixture(t)
	_, err = f2.send(t, f2.input("m1", "m1#1", hello))
	require.NoError(t, err)
	require.Zero(t, f2.line.profiles)
}

func TestSendStepProfileFailureIsRetried(t *testing.T) {
	f := newFixture(t)
	f.line.profile = func(string) (string, error) { return "", errors.New("profile API down") }
	_, err := f.send(t, f.input("m1", "m1#1", `{"type":"text","text":"Hi {{displayName}}"}`))
	require.Error(t, err)
	require.Empty(t, f.line.Pushes(), "no push without the name")
}

func TestFinishEnrollment(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	e := &models.Enrollment{ChannelID: f.channel.ID, ScenarioID: 7, ScenarioVersion: 1, FriendID: f.friend.ID,
		WorkflowID: testWorkflowID, RunID: testRunID, StartedAt: time.Now()}
	require.NoError(t, f.store.RecordEnrollment(ctx, e))

	_, err := f.env.ExecuteActivity(f.acts.FinishEnrollment, activities.FinishEnrollmentInput{Status: models.EnrollmentExited, Reason: "blocked"})
	require.NoError(t, err)
	var got models.Enrollment
	require.NoError(t, f.store.DB.First(&got, e.ID).Error)
	require.Equal(t, models.EnrollmentExited, got.Status)
	require.Equal(t, "blocked", got.ExitReason)
	require.NotNil(t, got.EndedAt)
}

// A run that ends before its row was written (the process that started it
// stopped first) writes the row from what the workflow knows of itself.
func TestFinishEnrollmentWritesAMissingRow(t *testing.T) {
	f := newFixture(t)
	followed := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	_, err := f.env.ExecuteActivity(f.acts.FinishEnrollment, activities.FinishEnrollmentInput{
		Status: models.EnrollmentCompleted, ChannelID: f.channel.ID, ScenarioID: 7, Version: 2, FriendID: f.friend.ID,
		FollowedAt: followed, StartedAt: followed.Add(time.Second)})
	require.NoError(t, err)
	var got models.Enrollment
	require.NoError(t, f.store.DB.Where("workflow_id = ? AND run_id = ?", testWorkflowID, testRunID).First(&got).Error)
	require.Equal(t, models.EnrollmentCompleted, got.Status)
	require.Equal(t, []uint{f.channel.ID, 7, f.friend.ID}, []uint{got.ChannelID, got.ScenarioID, got.FriendID})
	require.Equal(t, 2, got.ScenarioVersion)
	require.True(t, got.FollowedAt.Equal(followed), "followed at %s", got.FollowedAt)
	require.True(t, got.StartedAt.Equal(followed.Add(time.Second)), "started at %s", got.StartedAt)
	require.NotNil(t, got.EndedAt)
}
