package workflows_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/stepcast/stepcast/activities"
	"github.com/stepcast/stepcast/metrics"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/workflows"
)

// a refers to the activities by method value, for mocks.
var a *activities.Activities

// TestEnrollmentGivesUpAStepAfterADay: LINE failing a step for good (500 on
// every try) is tried with growing waits, from a second up to five
// minutes, for up to 23 hours (LINE keeps a retry key for 24); then the step is
// failed and the scenario goes on.
func TestEnrollmentGivesUpAStepAfterADay(t *testing.T) {
	doc := `
name: give up
start: {type: follow}
nodes:
  - {id: w1, type: wait, next: m1, wait: {days: 1, at: "10:00"}}
  - {id: m1, type: message, next: w2, message: {messages: [{type: text, text: one}]}}
  - {id: w2, type: wait, next: m2, wait: {days: 3, at: "10:00"}}
  - {id: m2, type: message, message: {messages: [{type: text, text: two}]}}
`
	f := newFixture(t, jst(2026, 1, 30, 15, 0))
	f.line.push = func(a pushAttempt) (bool, error) {
		if a.RetryKey == key("m1#1") {
			return false, &activities.LineError{Status: http.StatusInternalServerError, Message: "Internal server error"}
		}
		return true, nil
	}
	st := f.run(parse(t, doc))

	var tries []pushAttempt
	for _, a := range f.line.Attempts() {
		if a.RetryKey == key("m1#1") {
			tries = append(tries, a)
		}
	}
	first, last := tries[0].At, tries[len(tries)-1].At
	require.True(t, first.Equal(jst(2026, 1, 31, 10, 0)))
	wait := time.Second
	for i := 1; i < len(tries); i++ {
		require.Equal(t, wait, tries[i].At.Sub(tries[i-1].At), "wait before try %d", i+1)
		wait = min(2*wait, 5*time.Minute)
	}
	require.GreaterOrEqual(t, last.Sub(first), 23*time.Hour-5*time.Minute)
	require.LessOrEqual(t, last.Sub(first), 23*time.Hour)

	requireTimes(t, f.line.Delivered(), jst(2026, 2, 2, 10, 0))
	require.Equal(t, 1, st.StepsSent)
	require.Equal(t, workflows.StatusCompleted, st.Status)
	require.Equal(t, metrics.SendFailed, st.Path[1].Outcome)
	require.Equal(t, "m1", st.Path[1].Node)
}

// TestEnrollmentOutlivesADatabaseOutage: a local activity that fails (the
// database is down) is tried again, with growing waits, however long it
// takes; the enrollment does not fail.
func TestEnrollmentOutlivesADatabaseOutage(t *testing.T) {
	start := jst(2026, 1, 30, 15, 0)
	f := newFixture(t, start)
	var tries []time.Time
	f.env.OnActivity(a.FinishEnrollment, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.FinishEnrollmentInput) error {
			tries = append(tries, f.env.Now())
			if len(tries) <= 12 {
				return errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
			}
			return f.store.FinishEnrollment(ctx, models.Enrollment{WorkflowID: testWorkflowID, RunID: testRunID}, in.Status, in.Reason, f.env.Now())
		})
	st := f.run(parseFile(t, "testdata/three_steps.yaml"))

	require.Equal(t, workflows.StatusCompleted, st.Status)
	require.Len(t, tries, 13)
	wait := time.Second
	for i := 1; i < len(tries); i++ {
		require.Equal(t, wait, tries[i].Sub(tries[i-1]), "wait before try %d", i+1)
		wait = min(2*wait, 5*time.Minute)
	}
	require.Equal(t, models.EnrollmentCompleted, f.enrollmentRow().Status)
}

// TestEnrollmentGiveUpCountsFromTheFirstFailure: a step held for longer than
// a day (the budget of January is spent) and then failing is still tried
// for up to 23 hours from its first failure, not given up at once.
func TestEnrollmentGiveUpCountsFromTheFirstFailure(t *testing.T) {
	doc := `
name: held then failing
start: {type: follow}
nodes:
  - {id: w1, type: wait, next: m1, wait: {days: 1, at: "10:00"}}
  - {id: m1, type: message, message: {messages: [{type: text, text: one}]}}
`
	f := newFixture(t, jst(2026, 1, 29, 15, 0))
	ctx := context.Background()
	budget := int64(1)
	ch, err := f.store.UpdateChannel(ctx, f.channel.ID, models.ChannelPatch{MonthlyBudget: &budget})
	require.NoError(t, err)
	ok, err := f.store.ReserveBudget(ctx, ch, "2026-01", 1)
	require.NoError(t, err)
	require.True(t, ok)
	f.line.push = func(pushAttempt) (bool, error) {
		return false, &activities.LineError{Status: http.StatusInternalServerError, Message: "Internal server error"}
	}
	st := f.run(parse(t, doc))

	tries := f.line.Attempts()
	require.NotEmpty(t, tries)
	feb := jst(2026, 2, 1, 0, 0)
	require.False(t, tries[0].At.Before(feb), "held by January's spent budget until February: first try %s", tries[0].At.In(tokyo))
	span := tries[len(tries)-1].At.Sub(tries[0].At)
	require.GreaterOrEqual(t, span, 23*time.Hour-5*time.Minute, "tried for a day from the first failure")
	require.LessOrEqual(t, span, 23*time.Hour)
	require.Zero(t, st.StepsSent)
	require.Equal(t, metrics.SendFailed, st.Path[len(st.Path)-1].Outcome)
}
