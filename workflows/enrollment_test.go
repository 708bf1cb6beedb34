package workflows_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/stepcast/stepcast/activities"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/scenario"
	"github.com/stepcast/stepcast/workflows"
)

// TestTestEnvironmentIDs checks the workflow ID and run ID that the other
// tests put in the enrollment row: the activities see exactly these.
func TestTestEnvironmentIDs(t *testing.T) {
	f := newFixture(t, jst(2026, 1, 30, 15, 0))
	f.run(parse(t, `
name: one
start: {type: follow}
nodes:
  - {id: m1, type: message, message: {messages: [{type: text, text: hi}]}}
`))
	ds := f.deliveries()
	require.Len(t, ds, 1)
	require.Equal(t, testWorkflowID, ds[0].WorkflowID)
	require.Equal(t, testRunID, ds[0].RunID)
	require.Equal(t, models.EnrollmentCompleted, f.enrollmentRow().Status, "FinishEnrollment found the row by these IDs")
}

// TestEnrollmentSendsEachStepAtItsTime runs the three-step scenario from
// 30 January 15:00 JST: day 1 at 10:00 is 31 January, day 3 at 10:00 is
// 2 February (across the month end), and 2 hours after that is 12:00.
func TestEnrollmentSendsEachStepAtItsTime(t *testing.T) {
	start := time.Date(2026, 1, 30, 6, 0, 0, 0, time.UTC) // 15:00 JST
	f := newFixture(t, start)
	st := f.run(parseFile(t, "testdata/three_steps.yaml"))

	got := f.line.Attempts()
	requireTimes(t, got, jst(2026, 1, 31, 10, 0), jst(2026, 2, 2, 10, 0), jst(2026, 2, 2, 12, 0))
	for i, a := range got {
		require.True(t, a.Accepted, "push %d", i)
		require.Equal(t, 1, a.Attempt, "push %d was not retried", i)
		require.Equal(t, "channel-token", a.Token)
		require.Equal(t, "Ufriend0001", a.To)
	}
	require.Equal(t, key("welcome#1"), got[0].RetryKey)
	require.Equal(t, key("coupon#2"), got[1].RetryKey)
	require.Equal(t, key("reminder#3"), got[2].RetryKey)
	require.Equal(t, "Welcome!", messageText(t, got[0].Messages[0]))
	require.Len(t, got[1].Messages, 2)
	require.JSONEq(t, `{"type":"sticker","packageId":"446","stickerId":"1988"}`, string(got[1].Messages[1]))
	require.Equal(t, "The coupon ends today", messageText(t, got[2].Messages[0]))

	require.Equal(t, workflows.StatusCompleted, st.Status)
	require.Equal(t, "reminder", st.Node)
	require.Equal(t, 3, st.StepsSent)
	require.Equal(t, 1, st.Version)
	require.Empty(t, st.ExitReason)
	require.Nil(t, st.NextDueAt)
	require.True(t, st.EnrolledAt.Equal(start), "enrolled at %s", st.EnrolledAt)

	ds := f.deliveries()
	require.Len(t, ds, 3)
	for i, d := range ds {
		require.Equal(t, models.DeliverySent, d.Status, "delivery %d", i)
		require.Equal(t, got[i].RetryKey, d.RetryKey)
		require.Equal(t, got[i].RequestID, d.LineRequestID)
		require.Equal(t, 1, d.Attempts)
		require.Equal(t, f.sc.ID, d.ScenarioID)
		require.Equal(t, f.friend.ID, d.FriendID)
	}
	require.Equal(t, []string{"welcome", "coupon", "reminder"}, []string{ds[0].NodeID, ds[1].NodeID, ds[2].NodeID})

	row := f.enrollmentRow()
	require.Equal(t, models.EnrollmentCompleted, row.Status)
	require.Empty(t, row.ExitReason)
	require.NotNil(t, row.EndedAt)
}

// TestEnrollmentCalendarDaysFromOtherStarts runs "days 1 at 10:00" then
// "days 3 at 10:00" from starts around month and year ends.
func TestEnrollmentCalendarDaysFromOtherStarts(t *testing.T) {
	const doc = `
name: two
start: {type: follow}
nodes:
  - {id: w1, type: wait, next: m1, wait: {days: 1, at: "10:00"}}
  - {id: m1, type: message, next: w3, message: {messages: [{type: text, text: one}]}}
  - {id: w3, type: wait, next: m3, wait: {days: 3, at: "10:00"}}
  - {id: m3, type: message, message: {messages: [{type: text, text: three}]}}
`
	tests := []struct {
		name   string
		start  time.Time
		d1, d3 time.Time
	}{
		{"Jan 31 in JST given in UTC", time.Date(2026, 1, 31, 14, 0, 0, 0, time.UTC), jst(2026, 2, 1, 10, 0), jst(2026, 2, 3, 10, 0)},
		{"late on Jan 31 UTC is Feb 1 JST", time.Date(2026, 1, 31, 16, 0, 0, 0, time.UTC), jst(2026, 2, 2, 10, 0), jst(2026, 2, 4, 10, 0)},
		{"Feb 27 in a non-leap year", jst(2026, 2, 27, 20, 0), jst(2026, 2, 28, 10, 0), jst(2026, 3, 2, 10, 0)},
		{"Feb 27 in a leap year", jst(2028, 2, 27, 20, 0), jst(2028, 2, 28, 10, 0), jst(2028, 3, 1, 10, 0)},
		{"Dec 30", jst(2026, 12, 30, 9, 0), jst(2026, 12, 31, 10, 0), jst(2027, 1, 2, 10, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.start)
			st := f.run(parse(t, doc))
			requireTimes(t, f.line.Delivered(), tt.d1, tt.d3)
			require.Equal(t, 2, st.StepsSent)
		})
	}
}

// TestEnrollmentDayZeroRule: "days 0 at 10:00" for a friend who adds the
// account at 14:00 is sent at 10:00 the next day; at 09:00 the same day; at
// exactly 10:00 the next day.
func TestEnrollmentDayZeroRule(t *testing.T) {
	const doc = `
name: day zero
start: {type: follow}
nodes:
  - {id: w0, type: wait, next: m0, wait: {days: 0, at: "10:00"}}
  - {id: m0, type: message, message: {messages: [{type: text, text: hello}]}}
`
	tests := []struct {
		name        string
		start, want time.Time
	}{
		{"added at 14:00", jst(2026, 4, 1, 14, 0), jst(2026, 4, 2, 10, 0)},
		{"added at 09:00", jst(2026, 4, 1, 9, 0), jst(2026, 4, 1, 10, 0)},
		{"added at 10:00 exactly", jst(2026, 4, 1, 10, 0), jst(2026, 4, 2, 10, 0)},
		{"added at 23:30 on Mar 31", jst(2026, 3, 31, 23, 30), jst(2026, 4, 1, 10, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.start)
			st := f.run(parse(t, doc))
			requireTimes(t, f.line.Delivered(), tt.want)
			require.Equal(t, workflows.StatusCompleted, st.Status)
		})
	}
}

// TestEnrollmentBlockSignalStopsLaterSteps: a block on day 2 (after the day-1
// message, before the day-3 one) ends the enrollment at once.
func TestEnrollmentBlockSignalStopsLaterSteps(t *testing.T) {
	start := jst(2026, 1, 30, 15, 0)
	f := newFixture(t, start)
	blockAt := start.Add(48 * time.Hour) // Feb 1 15:00 JST
	f.env.RegisterDelayedCallback(func() {
		f.env.SignalWorkflow(workflows.SignalFriendEvent, workflows.FriendEvent{Type: workflows.EventUnfollow, At: f.env.Now()})
	}, 48*time.Hour)

	st := f.run(parseFile(t, "testdata/three_steps.yaml"))

	requireTimes(t, f.line.Attempts(), jst(2026, 1, 31, 10, 0))
	require.Equal(t, workflows.StatusExited, st.Status)
	require.Equal(t, workflows.ExitBlocked, st.ExitReason)
	require.Equal(t, "day3", st.Node, "blocked while waiting for day 3")
	require.Equal(t, 1, st.StepsSent)
	require.Nil(t, st.NextDueAt)
	require.True(t, f.env.Now().Equal(blockAt), "the enrollment ended at the block (%s), not at the next due time (now %s)", blockAt, f.env.Now())

	row := f.enrollmentRow()
	require.Equal(t, models.EnrollmentExited, row.Status)
	require.Equal(t, workflows.ExitBlocked, row.ExitReason)
	require.NotNil(t, row.EndedAt)
	require.Len(t, f.deliveries(), 1, "no delivery row for the steps after the block")
}

// TestEnrollmentOtherEventsDoNotStopIt: an event that is not a block is read
// and the scenario goes on.
func TestEnrollmentOtherEventsDoNotStopIt(t *testing.T) {
	f := newFixture(t, jst(2026, 1, 30, 15, 0))
	f.env.RegisterDelayedCallback(func() {
		f.env.SignalWorkflow(workflows.SignalFriendEvent, workflows.FriendEvent{Type: "postback", At: f.env.Now()})
	}, 2*time.Hour)
	st := f.run(parseFile(t, "testdata/three_steps.yaml"))
	require.Equal(t, workflows.StatusCompleted, st.Status)
	require.Len(t, f.line.Delivered(), 3)
}

// TestEnrollmentBlockedFriendInDatabase: the friend blocked the account (the
// row says so) but no signal reached the workflow. Nothing is pushed and the
// workflow exits as blocked at the first step instead of waiting for the
// next ones, whatever node follows the message.
//
// "before the enrollment" blocks the friend from the start; "between two
// tries" blocks the friend in the database while LINE fails the first push
// (a 500, nothing accepted), so that it is the second try of the begun step
// that finds the block and skips the push.
func TestEnrollmentBlockedFriendInDatabase(t *testing.T) {
	docs := map[string]*scenario.Document{
		"three steps": parseFile(t, "testdata/three_steps.yaml"),
		"message is the last node": parse(t, `
name: last
start: {type: follow}
nodes:
  - {id: w1, type: wait, next: welcome, wait: {days: 1, at: "10:00"}}
  - {id: welcome, type: message, message: {messages: [{type: text, text: hi}]}}
`),
		"message before an exit node": parse(t, `
name: last
start: {type: follow}
nodes:
  - {id: w1, type: wait, next: welcome, wait: {days: 1, at: "10:00"}}
  - {id: welcome, type: message, next: x, message: {messages: [{type: text, text: hi}]}}
  - {id: x, type: exit}
`),
	}
	for _, when := range []string{"before the enrollment", "between two tries"} {
		for name, doc := range docs {
			t.Run(when+"/"+name, func(t *testing.T) {
				start := jst(2026, 1, 30, 15, 0)
				f := newFixture(t, start)
				block := func() {
					_, applied, err := f.store.ApplyUnfollow(context.Background(), f.channel.ID, f.friend.UserID, f.env.Now())
					require.NoError(t, err)
					require.True(t, applied)
				}
				if when == "before the enrollment" {
					block()
				} else {
					f.line.push = func(a pushAttempt) (bool, error) {
						require.Equal(t, 1, a.Attempt, "the second try must not push")
						block()
						return false, &activities.LineError{Status: 500, Message: "internal error"}
					}
				}

				st := f.run(doc)

				require.Empty(t, f.line.Delivered(), "nothing is pushed to a blocked friend")
				require.Equal(t, workflows.StatusExited, st.Status)
				require.Equal(t, workflows.ExitBlocked, st.ExitReason)
				require.Zero(t, st.StepsSent)
				first := jst(2026, 1, 31, 10, 0)
				require.WithinRange(t, f.env.Now(), first, first.Add(time.Minute), "ended at the first step, now %s", f.env.Now().In(tokyo))
				for _, d := range f.deliveries() {
					require.Equal(t, models.DeliverySkipped, d.Status, "a blocked friend's step is at most recorded as skipped")
				}
				if when == "between two tries" {
					require.Len(t, f.line.Attempts(), 1)
					ds := f.deliveries()
					require.Len(t, ds, 1, "the second try found the begun step and recorded the skip")
					require.Equal(t, "welcome", ds[0].NodeID)
					require.Equal(t, 2, ds[0].Attempts)
				} else {
					require.Empty(t, f.line.Attempts())
				}
				row := f.enrollmentRow()
				require.Equal(t, models.EnrollmentExited, row.Status)
				require.Equal(t, workflows.ExitBlocked, row.ExitReason)
			})
		}
	}
}

// TestEnrollmentStateQuery asks for the state during each wait.
func TestEnrollmentStateQuery(t *testing.T) {
	start := jst(2026, 1, 30, 15, 0)
	f := newFixture(t, start)
	var states []workflows.State
	query := func() {
		v, err := f.env.QueryWorkflow(workflows.QueryState)
		require.NoError(t, err)
		var st workflows.State
		require.NoError(t, v.Get(&st))
		states = append(states, st)
	}
	f.env.RegisterDelayedCallback(query, time.Hour)    // Jan 30 16:00, waiting for day 1
	f.env.RegisterDelayedCallback(query, 30*time.Hour) // Jan 31 21:00, waiting for day 3
	f.env.RegisterDelayedCallback(query, 68*time.Hour) // Feb 2 11:00, waiting for the 2h after

	final := f.run(parseFile(t, "testdata/three_steps.yaml"))

	require.Len(t, states, 3)
	want := []struct {
		node  string
		due   time.Time
		sent  int
		label string
	}{
		{"day1", jst(2026, 1, 31, 10, 0), 0, "first wait"},
		{"day3", jst(2026, 2, 2, 10, 0), 1, "second wait"},
		{"later", jst(2026, 2, 2, 12, 0), 2, "third wait"},
	}
	for i, w := range want {
		st := states[i]
		require.Equal(t, workflows.StatusWaiting, st.Status, w.label)
		require.Equal(t, w.node, st.Node, w.label)
		require.NotNil(t, st.NextDueAt, w.label)
		require.True(t, st.NextDueAt.Equal(w.due), "%s: next due %s, want %s", w.label, st.NextDueAt, w.due)
		require.Equal(t, w.sent, st.StepsSent, w.label)
		require.True(t, st.EnrolledAt.Equal(start), w.label)
		require.Equal(t, 1, st.Version, w.label)
		require.Empty(t, st.ExitReason, w.label)
	}

	// After the end the query still answers, with the final state.
	v, err := f.env.QueryWorkflow(workflows.QueryState)
	require.NoError(t, err)
	var st workflows.State
	require.NoError(t, v.Get(&st))
	require.Equal(t, final, st)
	require.Equal(t, workflows.StatusCompleted, st.Status)
	require.Nil(t, st.NextDueAt)
}

// TestEnrollmentRetriedSendDoesNotSendTwice: a send that fails and is retried
// by Temporal reaches the friend once, with the same retry key on every
// attempt.
func TestEnrollmentRetriedSendDoesNotSendTwice(t *testing.T) {
	const doc = `
name: two messages
start: {type: follow}
nodes:
  - {id: w1, type: wait, next: m1, wait: {days: 1, at: "10:00"}}
  - {id: m1, type: message, next: w2, message: {messages: [{type: text, text: one}]}}
  - {id: w2, type: wait, next: m2, wait: {after: 2h, from: previous}}
  - {id: m2, type: message, message: {messages: [{type: text, text: two}]}}
`
	tests := []struct {
		name string
		// first answers the first attempt of each step.
		first func() (accept bool, err error)
		// secondConflict: LINE answers the retry 409 when it had accepted
		// the first attempt, 200 otherwise.
		secondConflict bool
	}{
		{
			name: "LINE accepted but the answer was lost",
			first: func() (bool, error) {
				return true, errors.New("read tcp 10.0.0.2:51234->203.104.138.138:443: connection reset by peer")
			},
			secondConflict: true,
		},
		{
			name: "LINE answered 500",
			first: func() (bool, error) {
				return false, &activities.LineError{Status: http.StatusInternalServerError, Message: "Internal server error"}
			},
		},
		{
			name: "LINE answered 429 (rate, not the monthly limit)",
			first: func() (bool, error) {
				return false, &activities.LineError{Status: http.StatusTooManyRequests, Message: "The API rate limit has been exceeded."}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, jst(2026, 1, 30, 15, 0))
			f.line.push = func(a pushAttempt) (bool, error) {
				if a.Attempt == 1 {
					return tt.first()
				}
				return true, nil
			}
			st := f.run(parse(t, doc))

			attempts := f.line.Attempts()
			require.Len(t, attempts, 4, "two attempts per step: %+v", attempts)
			for step, stepKey := range []string{"m1#1", "m2#2"} {
				first, second := attempts[2*step], attempts[2*step+1]
				require.Equal(t, key(stepKey), first.RetryKey)
				require.Equal(t, first.RetryKey, second.RetryKey, "the retry has the same retry key")
				require.Equal(t, 2, second.Attempt)
				require.Equal(t, time.Second, second.At.Sub(first.At), "retried after the 1s initial interval")
				require.Equal(t, tt.secondConflict, second.Err != nil, "second answer: %v", second.Err)
			}
			delivered := f.line.Delivered()
			require.Len(t, delivered, 2, "LINE accepted exactly one push per step")
			require.NotEqual(t, delivered[0].RetryKey, delivered[1].RetryKey)

			ds := f.deliveries()
			require.Len(t, ds, 2)
			for i, d := range ds {
				require.Equal(t, models.DeliverySent, d.Status, "delivery %d", i)
				require.Equal(t, 2, d.Attempts)
				require.Equal(t, delivered[i].RequestID, d.LineRequestID, "the request ID is the accepted one")
				require.NotNil(t, d.SentAt)
			}
			require.Equal(t, 2, st.StepsSent)
			require.Equal(t, workflows.StatusCompleted, st.Status)
			// "from: previous" counts from when the step was done, after the retry.
			require.True(t, attempts[0].At.Equal(jst(2026, 1, 31, 10, 0)))
			require.Equal(t, 2*time.Hour, attempts[2].At.Sub(attempts[1].At), "m2 is due 2h after m1's successful attempt")
		})
	}
}

// TestEnrollmentRefusedStepGoesOn: a 400 from LINE will not change on retry;
// the delivery is failed and the scenario goes on to the next step.
func TestEnrollmentRefusedStepGoesOn(t *testing.T) {
	f := newFixture(t, jst(2026, 1, 30, 15, 0))
	f.line.push = func(a pushAttempt) (bool, error) {
		if a.RetryKey == key("welcome#1") {
			return false, &activities.LineError{Status: http.StatusBadRequest, Message: "The request body has 1 error(s)"}
		}
		return true, nil
	}
	st := f.run(parseFile(t, "testdata/three_steps.yaml"))

	attempts := f.line.Attempts()
	require.Len(t, attempts, 3, "the refused step is not retried")
	require.False(t, attempts[0].Accepted)
	requireTimes(t, f.line.Delivered(), jst(2026, 2, 2, 10, 0), jst(2026, 2, 2, 12, 0))

	ds := f.deliveries()
	require.Len(t, ds, 3)
	require.Equal(t, models.DeliveryFailed, ds[0].Status)
	require.Contains(t, ds[0].Error, "400")
	require.Equal(t, 1, ds[0].Attempts)
	require.Equal(t, models.DeliverySent, ds[1].Status)
	require.Equal(t, models.DeliverySent, ds[2].Status)
	require.Equal(t, workflows.StatusCompleted, st.Status)
	require.Equal(t, 2, st.StepsSent, "a failed step is not counted as sent")
}

// TestEnrollmentExitNode: an exit node ends the enrollment; nodes after it
// are not sent. The exit names a next node on purpose (validation refuses
// that, the workflow must not follow it anyway).
func TestEnrollmentExitNode(t *testing.T) {
	doc := &scenario.Document{
		Name:  "exit",
		Start: scenario.Start{Type: scenario.StartFollow},
		Nodes: []scenario.Node{
			{ID: "w1", Type: scenario.NodeWait, Next: "m1", Wait: &scenario.Wait{After: "1h"}},
			{ID: "m1", Type: scenario.NodeMessage, Next: "x", Message: &scenario.MessageStep{Messages: texts("one")}},
			{ID: "x", Type: scenario.NodeExit, Next: "w2"},
			{ID: "w2", Type: scenario.NodeWait, Next: "m2", Wait: &scenario.Wait{After: "1h"}},
			{ID: "m2", Type: scenario.NodeMessage, Message: &scenario.MessageStep{Messages: texts("two")}},
		},
	}
	start := jst(2026, 1, 30, 15, 0)
	f := newFixture(t, start)
	st := f.run(doc)

	requireTimes(t, f.line.Delivered(), start.Add(time.Hour))
	require.Equal(t, "one", messageText(t, f.line.Delivered()[0].Messages[0]))
	require.Len(t, f.line.Attempts(), 1)
	require.Equal(t, workflows.StatusExited, st.Status)
	require.Equal(t, workflows.ExitExitNode, st.ExitReason)
	require.Equal(t, "x", st.Node)
	require.Equal(t, 1, st.StepsSent)
	row := f.enrollmentRow()
	require.Equal(t, models.EnrollmentExited, row.Status)
	require.Equal(t, "exit node", row.ExitReason)
}

// TestEnrollmentDisplayName: {{displayName}} becomes the name from LINE's
// profile, escaped for the JSON string it is in.
func TestEnrollmentDisplayName(t *testing.T) {
	f := newFixture(t, jst(2026, 1, 30, 15, 0))
	f.line.profile = func(userID string) (string, error) {
		require.Equal(t, "Ufriend0001", userID)
		return `Ta"ro \ 太郎`, nil
	}
	st := f.run(parse(t, `
name: names
start: {type: follow}
nodes:
  - {id: m1, type: message, next: w, message: {messages: [{type: text, text: "Hello {{displayName}}!"}, {type: text, text: "no name here"}]}}
  - {id: w, type: wait, next: m2, wait: {after: 1h}}
  - {id: m2, type: message, message: {messages: [{type: text, text: "Bye, {{displayName}}"}]}}
`))
	require.Equal(t, 2, st.StepsSent)
	got := f.line.Delivered()
	require.Len(t, got, 2)
	require.Equal(t, `Hello Ta"ro \ 太郎!`, messageText(t, got[0].Messages[0]))
	require.Contains(t, string(got[0].Messages[0]), `Ta\"ro \\ 太郎`, "the name is JSON-escaped inside the string")
	require.Equal(t, "no name here", messageText(t, got[0].Messages[1]))
	require.Equal(t, `Bye, Ta"ro \ 太郎`, messageText(t, got[1].Messages[0]))
	require.Equal(t, 1, f.line.profileCalls, "the name is fetched once and kept")
	friend, err := f.store.FriendByID(context.Background(), f.friend.ID)
	require.NoError(t, err)
	require.Equal(t, `Ta"ro \ 太郎`, friend.DisplayName)
}

// TestEnrollmentUpsertsNodeSearchAttribute: StepcastNode names the node the
// friend waits at, so the Web UI can find who is where. (By design only
// waiting nodes set it: that is where a friend can be found, and it saves a
// history event per step.)
func TestEnrollmentUpsertsNodeSearchAttribute(t *testing.T) {
	f := newFixture(t, jst(2026, 1, 30, 15, 0))
	var nodes []string
	f.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		v, ok := sa.GetKeyword(workflows.AttrNode)
		require.True(t, ok, "each upsert sets StepcastNode")
		nodes = append(nodes, v)
	}).Return(nil)

	f.run(parseFile(t, "testdata/three_steps.yaml"))

	require.Equal(t, []string{"day1", "day3", "later"}, nodes)
	f.env.AssertExpectations(t)
}

// upsertedNodes runs three_steps.yaml started with the search attributes
// enroll gives it (StepcastNode at the entry wait) and lists the nodes the
// run upserted StepcastNode to.
func upsertedNodes(t *testing.T, revision int) []string {
	f := newFixture(t, jst(2026, 1, 30, 15, 0))
	f.revision = revision
	doc := parseFile(t, "testdata/three_steps.yaml")
	require.NoError(t, f.env.SetTypedSearchAttributesOnStart(workflows.StartSearchAttributes(f.channel.ID, f.sc.Key, f.friend.UserID, doc)))
	var nodes []string
	f.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		v, _ := args.Get(0).(temporal.SearchAttributes).GetKeyword(workflows.AttrNode)
		nodes = append(nodes, v)
	}).Return(nil)
	st := f.run(doc)
	require.Equal(t, workflows.StatusCompleted, st.Status)
	require.Len(t, f.line.Delivered(), 3)
	return nodes
}

// An enrollment started at its entry wait does not upsert StepcastNode to
// the value it already holds: its first workflow task has no upsert. Runs
// of revision 1 (started before) replay the upsert their histories hold.
func TestEnrollmentStartedAtItsWaitUpsertsOnlyChanges(t *testing.T) {
	require.Equal(t, []string{"day3", "later"}, upsertedNodes(t, workflows.Revision))
	require.Equal(t, []string{"day1", "day3", "later"}, upsertedNodes(t, 1))
}

// StartSearchAttributes names the channel, scenario and friend, and the
// entry node when the scenario begins by waiting (for a time or an event):
// where the friend is before the first workflow task runs.
func TestStartSearchAttributes(t *testing.T) {
	for _, tc := range []struct {
		doc, node string
	}{
		{"nodes: [{id: w, type: wait, next: m, wait: {after: 1h}}, {id: m, type: message, message: {messages: [{type: text, text: hi}]}}]", "w"},
		{"nodes: [{id: e, type: wait_event, waitEvent: {event: {type: postback}, timeout: {after: 1h}, onEvent: m, onTimeout: m}}, {id: m, type: message, message: {messages: [{type: text, text: hi}]}}]", "e"},
		{"nodes: [{id: m, type: message, message: {messages: [{type: text, text: hi}]}}]", ""},
	} {
		doc := parse(t, "name: x\nstart: {type: follow}\n"+tc.doc)
		sa := workflows.StartSearchAttributes(7, "welcome", "Uabc", doc)
		ch, _ := sa.GetKeyword(workflows.AttrChannel)
		key, _ := sa.GetKeyword(workflows.AttrScenario)
		user, _ := sa.GetKeyword(workflows.AttrFriend)
		require.Equal(t, []string{"7", "welcome", "Uabc"}, []string{ch, key, user})
		node, ok := sa.GetKeyword(workflows.AttrNode)
		require.Equal(t, tc.node != "", ok, tc.doc)
		require.Equal(t, tc.node, node)
	}
}

// monthlyLimit is LINE's answer when the channel's monthly quota is used up.
func monthlyLimit() error {
	return &activities.LineError{Status: http.StatusTooManyRequests, Message: "You have reached your monthly limit."}
}

// TestEnrollmentMonthlyLimitHoldsTheStep: LINE's 429 "monthly limit" on the
// day-1 step (31 January 10:00 JST) holds the channel's steps until LINE's
// month turns in the channel's time zone: the gate is asked again at most
// every 6 hours (16:00, 22:00), and at 1 February 00:00 JST the step goes,
// once, with the same retry key. Later steps keep their own due times. The
// January reservation was given back; February counts what was sent.
func TestEnrollmentMonthlyLimitHoldsTheStep(t *testing.T) {
	start := jst(2026, 1, 30, 15, 0)
	f := newFixture(t, start)
	budget := int64(100)
	f.patchChannel(models.ChannelPatch{MonthlyBudget: &budget})
	nextMonth := jst(2026, 2, 1, 0, 0)
	f.line.push = func(a pushAttempt) (bool, error) {
		if a.At.Before(nextMonth) {
			return false, monthlyLimit()
		}
		return true, nil
	}
	var held, heldLater workflows.State
	f.queryAt(jst(2026, 1, 31, 11, 0), &held)
	f.queryAt(jst(2026, 1, 31, 23, 0), &heldLater)

	st := f.run(parseFile(t, "testdata/three_steps.yaml"))

	attempts := f.line.Attempts()
	requireTimes(t, attempts, jst(2026, 1, 31, 10, 0), nextMonth, jst(2026, 2, 2, 10, 0), jst(2026, 2, 2, 12, 0))
	require.False(t, attempts[0].Accepted)
	require.Equal(t, key("welcome#1"), attempts[0].RetryKey)
	require.Equal(t, key("welcome#1"), attempts[1].RetryKey, "the held step keeps its retry key")
	requireTimes(t, f.line.Delivered(), nextMonth, jst(2026, 2, 2, 10, 0), jst(2026, 2, 2, 12, 0))
	require.Equal(t, 3, st.StepsSent)
	require.Equal(t, workflows.StatusCompleted, st.Status)

	require.Equal(t, workflows.StatusHeld, held.Status)
	require.Equal(t, activities.HoldBudget, held.HeldReason)
	require.Equal(t, "welcome", held.Node)
	require.NotNil(t, held.NextDueAt)
	require.True(t, held.NextDueAt.Equal(jst(2026, 1, 31, 16, 0)), "asks again after 6h, not at the month's end: %s", held.NextDueAt.In(tokyo))
	require.Equal(t, workflows.StatusHeld, heldLater.Status)
	require.True(t, heldLater.NextDueAt.Equal(nextMonth), "the last recheck is the month's start: %s", heldLater.NextDueAt.In(tokyo))

	ds := f.deliveries()
	require.Len(t, ds, 3)
	require.Equal(t, models.DeliverySent, ds[0].Status)
	require.Equal(t, 2, ds[0].Attempts)
	require.True(t, ds[0].SentAt.Equal(nextMonth))
	ch, err := f.store.Channel(context.Background(), f.channel.ID)
	require.NoError(t, err)
	require.Equal(t, "2026-01", ch.LineQuotaMonth)
	require.Zero(t, f.usage("2026-01"), "the refused push's reservation was given back")
	require.Equal(t, int64(4), f.usage("2026-02"), "1 + 2 + 1 messages sent in February")
}

// TestEnrollmentMonthlyLimitClearedByAnOperator: the plan is upgraded on day 1
// at 12:30; the operator clears LINE's answer and the API signals recheck. The
// held step goes at 12:30, not at the next 6-hourly recheck. Without the
// signal it goes at that recheck (16:00).
func TestEnrollmentMonthlyLimitClearedByAnOperator(t *testing.T) {
	for _, signal := range []bool{true, false} {
		name := map[bool]string{true: "with the recheck signal", false: "without a signal"}[signal]
		t.Run(name, func(t *testing.T) {
			start := jst(2026, 1, 30, 15, 0)
			f := newFixture(t, start)
			var upgraded atomic.Bool
			f.line.push = func(pushAttempt) (bool, error) {
				if !upgraded.Load() {
					return false, monthlyLimit()
				}
				return true, nil
			}
			clearAt := jst(2026, 1, 31, 12, 30)
			clearQuota := func() {
				upgraded.Store(true)
				f.patchChannel(models.ChannelPatch{ClearLineQuota: true})
			}
			if signal {
				f.controlAt(clearAt, workflows.ControlRecheck, clearQuota)
			} else {
				f.at(clearAt, clearQuota)
			}
			st := f.run(parseFile(t, "testdata/three_steps.yaml"))

			want := clearAt
			if !signal {
				want = jst(2026, 1, 31, 16, 0)
			}
			requireTimes(t, f.line.Attempts(), jst(2026, 1, 31, 10, 0), want, jst(2026, 2, 2, 10, 0), jst(2026, 2, 2, 12, 0))
			requireTimes(t, f.line.Delivered(), want, jst(2026, 2, 2, 10, 0), jst(2026, 2, 2, 12, 0))
			require.Equal(t, f.line.Attempts()[0].RetryKey, f.line.Attempts()[1].RetryKey)
			require.Equal(t, 3, st.StepsSent)
		})
	}
}

// TestEnrollmentMonthlyLimitLongerThanADay: a quota used up early in the
// month holds for weeks; nothing is dropped (the step is not an activity
// that times out after 23h) and the step goes once on the 1st.
func TestEnrollmentMonthlyLimitLongerThanADay(t *testing.T) {
	start := jst(2026, 1, 3, 15, 0)
	f := newFixture(t, start)
	quotaBack := jst(2026, 2, 1, 0, 0) // the next month, 27 days after the refusal
	f.line.push = func(a pushAttempt) (bool, error) {
		if a.At.Before(quotaBack) {
			return false, monthlyLimit()
		}
		return true, nil
	}
	st := f.run(parse(t, `
name: one step
start: {type: follow}
nodes:
  - {id: w1, type: wait, next: m1, wait: {days: 1, at: "10:00"}}
  - {id: m1, type: message, message: {messages: [{type: text, text: hello}]}}
`))

	requireTimes(t, f.line.Attempts(), jst(2026, 1, 4, 10, 0), quotaBack)
	requireTimes(t, f.line.Delivered(), quotaBack)
	require.Equal(t, 1, st.StepsSent)
	ds := f.deliveries()
	require.Len(t, ds, 1)
	require.Equal(t, models.DeliverySent, ds[0].Status)
	require.Equal(t, 2, ds[0].Attempts)
}

func texts(ss ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(ss))
	for i, s := range ss {
		b, _ := json.Marshal(map[string]string{"type": "text", "text": s})
		out[i] = b
	}
	return out
}
