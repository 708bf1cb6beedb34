package workflows_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/stepcast/stepcast/activities"
	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/scenario"
	"github.com/stepcast/stepcast/workflows"
)

// cartDoc is the abandoned-cart case: a reminder at enrollment, then wait
// for a purchase of at least 5000 until day 1 at 20:00; thanks on the
// purchase, a nudge on the timeout.
const cartDoc = `
name: cart
start: {type: follow}
nodes:
  - {id: remind, type: message, next: we, message: {messages: [{type: text, text: "Your cart is waiting"}]}}
  - id: we
    type: wait_event
    waitEvent:
      event: {type: purchase, props: [{key: amount, op: gte, value: "5000"}]}
      timeout: {days: 1, at: "20:00"}
      onEvent: thanks
      onTimeout: nudge
  - {id: thanks, type: message, message: {messages: [{type: text, text: "Thanks for your order"}]}}
  - {id: nudge, type: message, message: {messages: [{type: text, text: "10% off your cart"}]}}
`

// TestWaitEvent: a matching event before the timeout takes the onEvent path
// at the event's time; events that do not match (another type, a purchase
// under the amount) are read and ignored; without a match the timeout path
// is taken at exactly the due time.
func TestWaitEvent(t *testing.T) {
	start := jst(2026, 3, 2, 15, 0)
	timeout := jst(2026, 3, 3, 20, 0)
	type sig struct {
		at time.Time
		ev workflows.FriendEvent
	}
	purchase := func(amount string) workflows.FriendEvent {
		return workflows.FriendEvent{Type: "purchase", Props: map[string]string{"amount": amount}}
	}
	tests := []struct {
		name    string
		signals []sig
		want    string
		wantAt  time.Time
		outcome string
	}{
		{"purchase before the timeout", []sig{{jst(2026, 3, 3, 9, 17), purchase("6000")}},
			"Thanks for your order", jst(2026, 3, 3, 9, 17), "event"},
		{"non-matching events, then a purchase", []sig{
			{jst(2026, 3, 2, 16, 0), workflows.FriendEvent{Type: "page_view", Props: map[string]string{"url": "https://shop.example/cart"}}},
			{jst(2026, 3, 2, 18, 0), purchase("3000")},
			{jst(2026, 3, 2, 19, 0), workflows.FriendEvent{Type: "add_to_cart"}},
			{jst(2026, 3, 3, 11, 45), purchase("5000")},
		}, "Thanks for your order", jst(2026, 3, 3, 11, 45), "event"},
		{"only non-matching events", []sig{
			{jst(2026, 3, 2, 18, 0), purchase("4999")},
			{jst(2026, 3, 3, 19, 59), workflows.FriendEvent{Type: "click", ScenarioKey: "welcome", Node: "remind"}},
		}, "10% off your cart", timeout, "timeout"},
		{"no event", nil, "10% off your cart", timeout, "timeout"},
		{"purchase after the timeout", []sig{{jst(2026, 3, 3, 20, 30), purchase("9000")}},
			"10% off your cart", timeout, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, start)
			for _, s := range tt.signals {
				f.signalEventAt(s.at, s.ev)
			}
			var waiting workflows.State
			f.queryAt(jst(2026, 3, 2, 15, 30), &waiting)

			st := f.run(parse(t, cartDoc))

			requireTimes(t, f.line.Delivered(), start, tt.wantAt)
			require.Equal(t, []string{"Your cart is waiting", tt.want}, f.deliveredTexts())
			we := visit(t, st, "we")
			require.Equal(t, tt.outcome, we.Outcome)
			require.True(t, we.At.Equal(tt.wantAt), "wait_event left at %s", we.At.In(tokyo))
			require.Equal(t, workflows.StatusCompleted, st.Status)

			require.Equal(t, workflows.StatusWaitingForEvent, waiting.Status)
			require.Equal(t, "we", waiting.Node)
			require.NotNil(t, waiting.NextDueAt)
			require.True(t, waiting.NextDueAt.Equal(timeout), "the query shows the timeout: %s", waiting.NextDueAt)
		})
	}
}

// TestWaitEventUnfollowEndsIt: a block during a wait_event ends the
// enrollment at once; neither path is taken.
func TestWaitEventUnfollowEndsIt(t *testing.T) {
	start := jst(2026, 3, 2, 15, 0)
	f := newFixture(t, start)
	f.signalEventAt(jst(2026, 3, 2, 22, 0), workflows.FriendEvent{Type: workflows.EventUnfollow})
	st := f.run(parse(t, cartDoc))
	require.Equal(t, []string{"Your cart is waiting"}, f.deliveredTexts())
	require.Equal(t, workflows.StatusExited, st.Status)
	require.Equal(t, workflows.ExitBlocked, st.ExitReason)
	require.True(t, f.env.Now().Equal(jst(2026, 3, 2, 22, 0)))
}

// TestPlainWaitIgnoresEventsButBlocks: clicks, purchases, postbacks and
// control signals that do not end the scenario arrive during a plain wait;
// each is read and the wait still ends at its due time, not before.
func TestPlainWaitIgnoresEventsButBlocks(t *testing.T) {
	start := jst(2026, 1, 30, 15, 0)
	f := newFixture(t, start)
	f.signalEventAt(jst(2026, 1, 30, 17, 0), workflows.FriendEvent{Type: "click", ScenarioKey: "welcome", Node: "welcome"})
	f.signalEventAt(jst(2026, 1, 30, 18, 0), workflows.FriendEvent{Type: "purchase", Props: map[string]string{"amount": "100"}})
	f.signalEventAt(jst(2026, 1, 31, 9, 59), workflows.FriendEvent{Type: "postback", Name: "action=later"})
	f.controlAt(jst(2026, 1, 31, 2, 0), workflows.ControlRecheck, nil)
	f.controlAt(jst(2026, 1, 31, 3, 0), workflows.ControlResume, nil)
	f.signalEventAt(jst(2026, 2, 1, 12, 0), workflows.FriendEvent{Type: "message", Name: "hello"})

	st := f.run(parseFile(t, "testdata/three_steps.yaml"))

	requireTimes(t, f.line.Delivered(), jst(2026, 1, 31, 10, 0), jst(2026, 2, 2, 10, 0), jst(2026, 2, 2, 12, 0))
	require.Equal(t, workflows.StatusCompleted, st.Status)
	require.Equal(t, 3, st.StepsSent)
	require.True(t, visit(t, st, "day1").At.Equal(jst(2026, 1, 31, 10, 0)))
}

// splitDoc sends friends down a 80/20 split to exit nodes a and b.
const splitDoc = `
name: split
start: {type: follow}
nodes:
  - id: s
    type: split
    split:
      paths:
        - {weight: 80, next: a}
        - {weight: 20, next: b}
  - {id: a, type: exit}
  - {id: b, type: exit}
`

// splitRun runs the split scenario for one user ID in a fresh test
// environment on store and returns the path taken ("path 0" or "path 1").
func splitRun(t *testing.T, store *models.Store, friend *models.Friend, sc *models.Scenario, doc *scenario.Document, userID string) string {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(testenv.Logger()))
	env := suite.NewTestWorkflowEnvironment()
	env.SetStartTime(jst(2026, 3, 2, 15, 0))
	env.RegisterWorkflowWithOptions(workflows.Enrollment, workflow.RegisterOptions{Name: workflows.EnrollmentWorkflow})
	env.RegisterActivity(&activities.Activities{Store: store, LINE: &fakeLINE{now: env.Now}})
	env.ExecuteWorkflow(workflows.EnrollmentWorkflow, workflows.EnrollmentInput{
		ChannelID: friend.ChannelID, ScenarioID: sc.ID, ScenarioKey: sc.Key, Version: 1,
		FriendID: friend.ID, UserID: userID, Document: *doc, Revision: workflows.Revision,
	})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var st workflows.State
	require.NoError(t, env.GetWorkflowResult(&st))
	require.Len(t, st.Path, 2, "%v", pathOf(st))
	require.Equal(t, "s", st.Path[0].Node)
	want := map[string]string{"path 0": "a", "path 1": "b"}[st.Path[0].Outcome]
	require.Equal(t, want, st.Path[1].Node, "the path taken is the one reported")
	return st.Path[0].Outcome
}

// TestSplitIsStablePerFriend: the same friend takes the same path every
// time (two runs each, for 30 friends).
func TestSplitIsStablePerFriend(t *testing.T) {
	f := newFixture(t, jst(2026, 3, 2, 15, 0))
	doc := parse(t, splitDoc)
	seen := map[string]bool{}
	for i := range 30 {
		user := fmt.Sprintf("U%08dabcdef0123456789abcdef01", i)
		first := splitRun(t, f.store, f.friend, f.sc, doc, user)
		require.Equal(t, first, splitRun(t, f.store, f.friend, f.sc, doc, user), "friend %s", user)
		seen[first] = true
	}
	require.Len(t, seen, 2, "30 friends on a 80/20 split do not all take one path")
}

// TestSplitWeights: over 1000 friends, the 80-weight path gets between 70%
// and 90% of them.
func TestSplitWeights(t *testing.T) {
	f := newFixture(t, jst(2026, 3, 2, 15, 0))
	doc := parse(t, splitDoc)
	counts := map[string]int{}
	for i := range 1000 {
		counts[splitRun(t, f.store, f.friend, f.sc, doc, fmt.Sprintf("U%08dabcdef0123456789abcdef01", i))]++
	}
	t.Logf("split of 1000 friends: %v", counts)
	require.Equal(t, 1000, counts["path 0"]+counts["path 1"])
	require.GreaterOrEqual(t, counts["path 0"], 700)
	require.LessOrEqual(t, counts["path 0"], 900)
}

// TestTagNode: a tag node adds and removes the friend's tags in the
// database (defining new ones on the channel); a later branch sees them.
func TestTagNode(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, jst(2026, 3, 2, 15, 0))
	require.NoError(t, f.store.AddTags(ctx, f.friend.ID, []string{"prospect", "keep"}))
	st := f.run(parse(t, `
name: tags
start: {type: follow}
nodes:
  - {id: t, type: tag, next: w, tag: {add: [customer, vip], remove: [prospect, never-had]}}
  - {id: w, type: wait, next: b, wait: {days: 1, at: "10:00"}}
  - id: b
    type: branch
    branch:
      default: m_other
      cases:
        - {when: {tag: prospect}, next: m_prospect}
        - {when: {all: [{tag: vip}, {tag: customer}, {tag: keep}]}, next: m_vip}
  - {id: m_prospect, type: message, message: {messages: [{type: text, text: prospect}]}}
  - {id: m_vip, type: message, message: {messages: [{type: text, text: vip}]}}
  - {id: m_other, type: message, message: {messages: [{type: text, text: other}]}}
`))
	tags, err := f.store.FriendTags(ctx, f.friend.ID)
	require.NoError(t, err)
	require.Equal(t, []string{"customer", "keep", "vip"}, tags)
	channelTags, err := f.store.ChannelTags(ctx, f.channel.ID)
	require.NoError(t, err)
	require.Subset(t, channelTags, []string{"customer", "vip"})
	require.Equal(t, []string{"vip"}, f.deliveredTexts())
	require.Equal(t, []string{"t:", "w:", "b:case 1", "m_vip:sent"}, pathOf(st))
}

// exitDoc is the three-step scenario with exit rules.
const exitDoc = `
name: exits
start: {type: follow}
exit:
  events:
    - {type: purchase}
    - {type: custom, name: unsubscribe}
  audience: buyers
nodes:
  - {id: day1, type: wait, next: welcome, wait: {days: 1, at: "10:00"}}
  - {id: welcome, type: message, next: day3, message: {messages: [{type: text, text: "Welcome!"}]}}
  - {id: day3, type: wait, next: coupon, wait: {days: 3, at: "10:00"}}
  - {id: coupon, type: message, next: day5, message: {messages: [{type: text, text: "Coupon"}]}}
  - {id: day5, type: wait, next: last, wait: {days: 5, at: "10:00"}}
  - {id: last, type: message, message: {messages: [{type: text, text: "Last call"}]}}
`

// exitFixture has the exit audience "buyers": the friends tagged "bought".
func exitFixture(t *testing.T, kind string) *fixture {
	t.Helper()
	f := newFixture(t, jst(2026, 1, 30, 15, 0))
	a := &models.Audience{ChannelID: f.channel.ID, Key: "buyers", Name: "Buyers", Kind: kind}
	if kind == models.AudienceRule {
		a.Rule = `{"tag":"bought"}`
	}
	require.NoError(t, f.store.CreateAudience(context.Background(), a))
	return f
}

// TestExitEvent: an exit event signalled during a wait ends the enrollment
// at once with "exit event"; events that are not exit events do not.
func TestExitEvent(t *testing.T) {
	tests := []struct {
		name string
		ev   workflows.FriendEvent
	}{
		{"purchase", workflows.FriendEvent{Type: "purchase", Props: map[string]string{"amount": "100"}}},
		{"custom unsubscribe", workflows.FriendEvent{Type: "custom", Name: "unsubscribe"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := exitFixture(t, models.AudienceRule)
			exitAt := jst(2026, 2, 1, 15, 0) // day 2, waiting for day 3
			f.signalEventAt(jst(2026, 1, 31, 20, 0), workflows.FriendEvent{Type: "custom", Name: "newsletter"})
			f.signalEventAt(jst(2026, 2, 1, 9, 0), workflows.FriendEvent{Type: "page_view"})
			f.signalEventAt(exitAt, tt.ev)

			st := f.run(parse(t, exitDoc))

			requireTimes(t, f.line.Delivered(), jst(2026, 1, 31, 10, 0))
			require.Equal(t, workflows.StatusExited, st.Status)
			require.Equal(t, workflows.ExitEvent, st.ExitReason)
			require.Equal(t, "day3", st.Node)
			require.True(t, f.env.Now().Equal(exitAt), "ended at the event, now %s", f.env.Now().In(tokyo))
			row := f.enrollmentRow()
			require.Equal(t, models.EnrollmentExited, row.Status)
			require.Equal(t, workflows.ExitEvent, row.ExitReason)
		})
	}
}

// TestExitAudience: the friend joins the exit audience on day 2 (a tag in
// the database for a rule audience, an upload for an uploaded one); no
// signal says so. The gate of the day-3 step ends the enrollment with "exit
// audience" before the push.
func TestExitAudience(t *testing.T) {
	for _, kind := range []string{models.AudienceRule, models.AudienceUploaded} {
		t.Run(kind, func(t *testing.T) {
			f := exitFixture(t, kind)
			f.at(jst(2026, 2, 1, 15, 0), func() {
				ctx := context.Background()
				if kind == models.AudienceRule {
					require.NoError(t, f.store.AddTags(ctx, f.friend.ID, []string{"bought"}))
					return
				}
				a, err := f.store.Audience(ctx, f.channel.ID, "buyers")
				require.NoError(t, err)
				require.NoError(t, f.store.AddAudienceMembers(ctx, a.ID, []string{f.friend.UserID}))
			})

			st := f.run(parse(t, exitDoc))

			requireTimes(t, f.line.Attempts(), jst(2026, 1, 31, 10, 0))
			require.Equal(t, workflows.StatusExited, st.Status)
			require.Equal(t, workflows.ExitAudience, st.ExitReason)
			require.Equal(t, "coupon", st.Node)
			require.Equal(t, 1, st.StepsSent)
			require.True(t, f.env.Now().Equal(jst(2026, 2, 2, 10, 0)), "ended at the day-3 gate, now %s", f.env.Now().In(tokyo))
			require.Len(t, f.deliveries(), 1, "no delivery row for the step after the exit")
		})
	}
}

// TestPath: State.Path lists every node visited, in order, with the time
// and the outcome: the case or default of a branch, event or timeout of a
// wait_event, the path of a split, the send outcome of a message.
func TestPath(t *testing.T) {
	start := jst(2026, 3, 2, 15, 0)
	f := newFixture(t, start)
	require.NoError(t, f.store.SetRoute(context.Background(), f.friend.ID, "qr-store", start))
	f.signalEventAt(jst(2026, 3, 3, 11, 0), workflows.FriendEvent{Type: "click", ScenarioKey: "welcome", Node: "m1"})
	st := f.run(parse(t, `
name: path
start: {type: follow}
nodes:
  - {id: w1, type: wait, next: m1, wait: {days: 1, at: "10:00"}}
  - {id: m1, type: message, next: b1, message: {messages: [{type: text, text: one}]}}
  - id: b1
    type: branch
    branch:
      default: m_default
      cases:
        - {when: {route: [ad]}, next: m_ad}
        - {when: {route: [qr-store]}, next: we1}
  - {id: m_ad, type: message, message: {messages: [{type: text, text: ad}]}}
  - {id: m_default, type: message, message: {messages: [{type: text, text: default}]}}
  - id: we1
    type: wait_event
    waitEvent:
      event: {type: click, node: m1}
      timeout: {after: 24h, from: previous}
      onEvent: s1
      onTimeout: s1
  - id: s1
    type: split
    split:
      paths:
        - {weight: 1, next: t1}
        - {weight: 1, next: t1}
  - {id: t1, type: tag, next: we2, tag: {add: [engaged]}}
  - id: we2
    type: wait_event
    waitEvent:
      event: {type: purchase}
      timeout: {after: 2h, from: previous}
      onEvent: b2
      onTimeout: b2
  - id: b2
    type: branch
    branch:
      default: x
      cases:
        - {when: {tag: nope}, next: x}
  - {id: x, type: exit}
`))
	split := visit(t, st, "s1").Outcome
	require.Contains(t, []string{"path 0", "path 1"}, split)
	require.Equal(t, []string{"w1:", "m1:sent", "b1:case 1", "we1:event", "s1:" + split, "t1:", "we2:timeout", "b2:default", "x:"}, pathOf(st))
	d1, click, timeout := jst(2026, 3, 3, 10, 0), jst(2026, 3, 3, 11, 0), jst(2026, 3, 3, 13, 0)
	for i, at := range []time.Time{d1, d1, d1, click, click, click, timeout, timeout, timeout} {
		require.True(t, st.Path[i].At.Equal(at), "visit %d (%s) at %s, want %s", i, st.Path[i].Node, st.Path[i].At.In(tokyo), at.In(tokyo))
	}
	require.Equal(t, workflows.StatusExited, st.Status)
	require.Equal(t, workflows.ExitExitNode, st.ExitReason)
}
