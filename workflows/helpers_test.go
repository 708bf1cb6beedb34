package workflows_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/stepcast/stepcast/activities"
	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/scenario"
	"github.com/stepcast/stepcast/workflows"
)

// The IDs the Temporal test environment gives the workflow under test;
// TestTestEnvironmentIDs checks them.
const (
	testWorkflowID = "default-test-workflow-id"
	testRunID      = "default-test-run-id"
)

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

// pushAttempt is one call of LINE's push API.
type pushAttempt struct {
	At       time.Time // virtual time of the call
	Token    string
	To       string
	RetryKey string
	Messages []json.RawMessage
	// Attempt counts the calls with this retry key, from 1.
	Attempt int
	// Accepted says LINE took the push: the friend got the messages.
	Accepted  bool
	RequestID string
	Err       error
}

// fakeLINE stands in for the Messaging API. Like LINE, it remembers the retry
// keys it accepted and answers 409 (with the accepted request's ID) to a key
// it has already accepted. push decides the answer for a key not yet
// accepted: accept says whether LINE takes the messages, err is what the
// caller sees (an accepted push with an error is an answer lost on the way).
type fakeLINE struct {
	now     func() time.Time
	push    func(a pushAttempt) (accept bool, err error)
	profile func(userID string) (string, error)

	mu           sync.Mutex
	attempts     []pushAttempt
	accepted     map[string]string // retry key → request ID
	profileCalls int
}

var _ activities.LINE = (*fakeLINE)(nil)

func (l *fakeLINE) Push(_ context.Context, token, to string, messages []json.RawMessage, retryKey string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := pushAttempt{At: l.now(), Token: token, To: to, RetryKey: retryKey, Messages: messages, Attempt: 1}
	for _, p := range l.attempts {
		if p.RetryKey == retryKey {
			a.Attempt++
		}
	}
	if id, ok := l.accepted[retryKey]; ok {
		a.Err = &activities.LineError{Status: 409, Message: "The retry key is already accepted", AcceptedRequestID: id}
		l.attempts = append(l.attempts, a)
		return "", a.Err
	}
	accept, err := true, error(nil)
	if l.push != nil {
		accept, err = l.push(a)
	}
	if accept {
		if l.accepted == nil {
			l.accepted = map[string]string{}
		}
		a.Accepted, a.RequestID = true, fmt.Sprintf("req-%d", len(l.accepted)+1)
		l.accepted[retryKey] = a.RequestID
	}
	a.Err = err
	l.attempts = append(l.attempts, a)
	if err != nil {
		return "", err
	}
	return a.RequestID, nil
}

func (l *fakeLINE) Profile(_ context.Context, _, userID string) (string, error) {
	l.mu.Lock()
	l.profileCalls++
	l.mu.Unlock()
	if l.profile != nil {
		return l.profile(userID)
	}
	return "Taro", nil
}

// Attempts returns every push call.
func (l *fakeLINE) Attempts() []pushAttempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]pushAttempt(nil), l.attempts...)
}

// Delivered returns the pushes LINE accepted, that is what the friend got.
func (l *fakeLINE) Delivered() []pushAttempt {
	var out []pushAttempt
	for _, a := range l.Attempts() {
		if a.Accepted {
			out = append(out, a)
		}
	}
	return out
}

// fixture is a workflow test environment with real activities on SQLite and
// a fake LINE, a channel and a following friend.
type fixture struct {
	t       *testing.T
	env     *testsuite.TestWorkflowEnvironment
	store   *models.Store
	line    *fakeLINE
	start   time.Time
	channel *models.Channel
	friend  *models.Friend
	sc      *models.Scenario
	// revision is the EnrollmentInput.Revision runs start with: the
	// current one unless a test of older runs sets it.
	revision int
}

func newFixture(t *testing.T, start time.Time) *fixture {
	t.Helper()
	return newFixtureOn(t, start, testenv.SQLite(t))
}

// newFixtureOn is newFixture on the given (empty, migrated) database.
func newFixtureOn(t *testing.T, start time.Time, store *models.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	ch := &models.Channel{Name: "Shop", LineChannelID: "1650000000", Secret: "secret", AccessToken: "channel-token", TimeZone: "Asia/Tokyo"}
	require.NoError(t, store.CreateChannel(ctx, ch))
	friend, _, err := store.ApplyFollow(ctx, ch.ID, "Ufriend0001", start)
	require.NoError(t, err)
	sc := &models.Scenario{ChannelID: ch.ID, Key: "welcome", Name: "Welcome", Draft: "{}"}
	require.NoError(t, store.CreateScenario(ctx, sc))

	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(testenv.Logger()))
	env := suite.NewTestWorkflowEnvironment()
	env.SetStartTime(start)
	line := &fakeLINE{now: env.Now}
	env.RegisterWorkflowWithOptions(workflows.Enrollment, workflow.RegisterOptions{Name: workflows.EnrollmentWorkflow})
	env.RegisterActivity(&activities.Activities{Store: store, LINE: line})
	return &fixture{t: t, env: env, store: store, line: line, start: start, channel: ch, friend: friend, sc: sc, revision: workflows.Revision}
}

// run records the enrollment row and runs the workflow to its end in virtual
// time, returning its final state.
func (f *fixture) run(doc *scenario.Document) workflows.State {
	f.t.Helper()
	st, err := f.exec(doc)
	require.NoError(f.t, err)
	return st
}

// exec is run for a workflow that may fail: it returns the workflow's error.
func (f *fixture) exec(doc *scenario.Document) (workflows.State, error) {
	f.t.Helper()
	require.NoError(f.t, f.store.RecordEnrollment(context.Background(), &models.Enrollment{
		ChannelID: f.channel.ID, ScenarioID: f.sc.ID, ScenarioVersion: 1, FriendID: f.friend.ID,
		WorkflowID: testWorkflowID, RunID: testRunID, StartedAt: f.start,
	}))
	f.env.ExecuteWorkflow(workflows.EnrollmentWorkflow, workflows.EnrollmentInput{
		ChannelID: f.channel.ID, ScenarioID: f.sc.ID, ScenarioKey: f.sc.Key, Version: 1,
		FriendID: f.friend.ID, UserID: f.friend.UserID, Document: *doc, Revision: f.revision,
	})
	require.True(f.t, f.env.IsWorkflowCompleted())
	if err := f.env.GetWorkflowError(); err != nil {
		return workflows.State{}, err
	}
	var st workflows.State
	require.NoError(f.t, f.env.GetWorkflowResult(&st))
	return st, nil
}

// at runs fn when the virtual clock reaches t (t is after the start).
func (f *fixture) at(t time.Time, fn func()) {
	f.t.Helper()
	require.True(f.t, t.After(f.start), "callback at %s is not after the start %s", t, f.start)
	f.env.RegisterDelayedCallback(fn, t.Sub(f.start))
}

// signalEventAt sends a friend event to the workflow at virtual time t.
func (f *fixture) signalEventAt(t time.Time, ev workflows.FriendEvent) {
	f.at(t, func() {
		ev.At = f.env.Now()
		f.env.SignalWorkflow(workflows.SignalFriendEvent, ev)
	})
}

// controlAt sends a control signal at virtual time t, after do (a change of
// the database that the signal announces) when do is set.
func (f *fixture) controlAt(t time.Time, action string, do func()) {
	f.at(t, func() {
		if do != nil {
			do()
		}
		f.env.SignalWorkflow(workflows.SignalControl, workflows.Control{Action: action})
	})
}

// query returns the enrollment's state now.
func (f *fixture) query() workflows.State {
	f.t.Helper()
	v, err := f.env.QueryWorkflow(workflows.QueryState)
	require.NoError(f.t, err)
	var st workflows.State
	require.NoError(f.t, v.Get(&st))
	return st
}

// queryAt records the state at virtual time t into *out.
func (f *fixture) queryAt(t time.Time, out *workflows.State) {
	f.at(t, func() { *out = f.query() })
}

// activate makes the fixture's draft scenario active, as publishing would.
func (f *fixture) activate() {
	f.t.Helper()
	require.NoError(f.t, f.store.DB.Model(&models.Scenario{}).Where("id = ?", f.sc.ID).Update("status", models.ScenarioActive).Error)
}

// setStatus moves the scenario through its lifecycle in the database.
func (f *fixture) setStatus(status string) {
	f.t.Helper()
	_, err := f.store.SetScenarioStatus(context.Background(), f.sc.ID, status)
	require.NoError(f.t, err)
}

// patchChannel changes the channel's delivery settings.
func (f *fixture) patchChannel(p models.ChannelPatch) {
	f.t.Helper()
	ch, err := f.store.UpdateChannel(context.Background(), f.channel.ID, p)
	require.NoError(f.t, err)
	f.channel = ch
}

// usage is the channel's budget use in a month ("2026-03").
func (f *fixture) usage(month string) int64 {
	f.t.Helper()
	n, err := f.store.Usage(context.Background(), f.channel.ID, month)
	require.NoError(f.t, err)
	return n
}

// deliveredTexts is the text of the first message of each push LINE took.
func (f *fixture) deliveredTexts() []string {
	f.t.Helper()
	var out []string
	for _, a := range f.line.Delivered() {
		out = append(out, messageText(f.t, a.Messages[0]))
	}
	return out
}

// guardGateSpin cancels the workflow when the Gate is asked more than limit
// times at one virtual time: a hold that does not move the clock on would
// otherwise ask it again for ever and the test would never end. It reports
// whether that happened.
func (f *fixture) guardGateSpin(limit int) *atomic.Bool {
	var (
		spun  atomic.Bool
		mu    sync.Mutex
		last  time.Time
		count int
	)
	f.env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
		if info.ActivityType.Name != "Gate" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		now := f.env.Now()
		if !now.Equal(last) {
			last, count = now, 0
		}
		count++
		if count > limit && !spun.Swap(true) {
			f.env.CancelWorkflow()
		}
	})
	return &spun
}

// pathOf returns the visits of the state's path as "node:outcome".
func pathOf(st workflows.State) []string {
	out := make([]string, len(st.Path))
	for i, v := range st.Path {
		out[i] = v.Node + ":" + v.Outcome
	}
	return out
}

// visit returns the first visit of node in the state's path.
func visit(t *testing.T, st workflows.State, node string) workflows.Visit {
	t.Helper()
	for _, v := range st.Path {
		if v.Node == node {
			return v
		}
	}
	t.Fatalf("node %s is not in the path %v", node, pathOf(st))
	return workflows.Visit{}
}

func (f *fixture) enrollmentRow() models.Enrollment {
	f.t.Helper()
	var e models.Enrollment
	require.NoError(f.t, f.store.DB.Where("workflow_id = ? AND run_id = ?", testWorkflowID, testRunID).First(&e).Error)
	return e
}

func (f *fixture) deliveries() []models.Delivery {
	f.t.Helper()
	var ds []models.Delivery
	require.NoError(f.t, f.store.DB.Order("id").Find(&ds).Error)
	return ds
}

// key is the retry key of a step of the run under test.
func key(stepKey string) string { return activities.RetryKey(testWorkflowID, testRunID, stepKey) }

// parse reads a scenario and requires it to be valid.
func parse(t *testing.T, src string) *scenario.Document {
	t.Helper()
	d, err := scenario.Parse([]byte(src))
	require.NoError(t, err)
	require.NoError(t, d.Validate())
	return d
}

func parseFile(t *testing.T, path string) *scenario.Document {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return parse(t, string(b))
}

// requireTimes checks that the attempts happened at want, in order.
func requireTimes(t *testing.T, got []pushAttempt, want ...time.Time) {
	t.Helper()
	require.Len(t, got, len(want), "pushes: %+v", got)
	for i := range want {
		require.True(t, got[i].At.Equal(want[i]), "push %d at %s, want %s", i, got[i].At.In(tokyo), want[i].In(tokyo))
	}
}

func messageText(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var m struct{ Text string }
	require.NoError(t, json.Unmarshal(raw, &m), "%s", raw)
	return m.Text
}
