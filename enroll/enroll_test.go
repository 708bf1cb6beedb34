package enroll_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdkworker "go.temporal.io/sdk/worker"
	"gorm.io/gorm"

	"github.com/stepcast/stepcast/activities"
	"github.com/stepcast/stepcast/enroll"
	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/scenario"
	"github.com/stepcast/stepcast/worker"
	"github.com/stepcast/stepcast/workflows"
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m))
}

// fixture is a channel on a fresh database, a real Temporal server and an
// enroll.Service on its own task queue. No worker runs unless the test
// starts one: the workflows started stay running, untouched.
type fixture struct {
	t        *testing.T
	store    *models.Store
	temporal client.Client
	queue    string
	svc      *enroll.Service
	channel  uint
	// statements counts the database round trips of the service's store.
	statements *atomic.Int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	url := testenv.PostgresDatabase(t)
	open := func() *models.Store {
		s, err := models.Open(url, "", testenv.Logger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	f := &fixture{t: t, store: open(), temporal: testenv.Temporal(t), queue: "enroll-test-" + strings.ToLower(testenv.UserID()[1:9]),
		statements: &atomic.Int64{}}
	counted := open()
	pool := &countingPool{counter{ConnPool: counted.DB.Statement.ConnPool, n: f.statements}}
	counted.DB.Statement.ConnPool, counted.DB.Config.ConnPool = pool, pool
	f.svc = &enroll.Service{Store: counted, Temporal: f.temporal, TaskQueue: f.queue, Log: testenv.Logger()}
	ch := &models.Channel{Name: "shop", LineChannelID: testenv.UserID(), Secret: "s", AccessToken: "t", TimeZone: "Asia/Tokyo"}
	if err := f.store.CreateChannel(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	f.channel = ch.ID
	return f
}

// publish creates and publishes a scenario from its nodes (JSON), starting
// on a follow with the given re-entry rule.
func (f *fixture) publish(key, reentry, nodes string) *models.Scenario {
	f.t.Helper()
	ctx := context.Background()
	doc := fmt.Sprintf(`{"name": %q, "start": {"type": "follow", "reentry": %q}, "nodes": %s}`, key, reentry, nodes)
	sc := &models.Scenario{ChannelID: f.channel, Key: key, Name: key, Draft: doc}
	if err := f.store.CreateScenario(ctx, sc); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.store.Publish(ctx, sc.ID, doc, time.Now()); err != nil {
		f.t.Fatal(err)
	}
	return sc
}

// A welcome after a day: the workflow waits, whether a worker runs or not.
const dayThenHello = `[
	{"id": "day-1", "type": "wait", "wait": {"days": 1, "at": "10:00"}, "next": "hello"},
	{"id": "hello", "type": "message", "message": {"messages": [{"type": "text", "text": "hi"}]}}]`

func (f *fixture) active() []models.ActiveScenario {
	f.t.Helper()
	scs, err := f.store.ActiveScenarios(context.Background(), f.channel)
	if err != nil {
		f.t.Fatal(err)
	}
	return scs
}

func (f *fixture) follow(user string, at time.Time) {
	f.t.Helper()
	if err := f.svc.FollowIn(context.Background(), f.active(), f.channel, user, at); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) enrollments() []models.Enrollment {
	f.t.Helper()
	es, err := f.store.Enrollments(context.Background(), models.EnrollmentFilter{ChannelID: f.channel}, models.Page{Limit: 500})
	if err != nil {
		f.t.Fatal(err)
	}
	return es
}

// startInput reads the input the workflow was started with.
func (f *fixture) startInput(wid, runID string) workflows.EnrollmentInput {
	f.t.Helper()
	it := f.temporal.GetWorkflowHistory(context.Background(), wid, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	ev, err := it.Next()
	if err != nil {
		f.t.Fatal(err)
	}
	var in workflows.EnrollmentInput
	payload := ev.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()[0]
	if err := json.Unmarshal(payload.GetData(), &in); err != nil {
		f.t.Fatal(err)
	}
	return in
}

// A follow of a new friend is two database round trips (the friend, the
// enrollment row) besides the start: the active scenarios come with the
// follow, and a friend the follow made has no past enrollment to ask for.
func TestFollowOfNewFriendRoundTrips(t *testing.T) {
	f := newFixture(t)
	f.publish("welcome", "never", dayThenHello)
	active := f.active()
	user := testenv.UserID()
	before := f.statements.Load()
	if err := f.svc.FollowIn(context.Background(), active, f.channel, user, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := f.statements.Load() - before; n != 2 {
		t.Fatalf("a new friend's follow took %d database round trips, want 2", n)
	}
	if es := f.enrollments(); len(es) != 1 {
		t.Fatalf("%d enrollments, want 1", len(es))
	}

	// A known friend (a second follow): the INSERT that finds the friend,
	// the UPDATE of the friend, then the past enrollments, which hold the
	// running one.
	before = f.statements.Load()
	if err := f.svc.FollowIn(context.Background(), active, f.channel, user, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := f.statements.Load() - before; n != 3 {
		t.Fatalf("a known friend's second follow took %d database round trips, want 3", n)
	}
}

// The enrollment's days count from the follow's own time, not from when
// the workflow starts: a friend who followed at 09:58, enrolled by a
// dispatcher or worker that runs behind, still gets a {"days": 0, "at":
// "09:59"} step that day, at once, not the next day.
func TestEnrollmentCountsFromTheFollow(t *testing.T) {
	f := newFixture(t)
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	followed := time.Now().Add(-5 * time.Minute).Truncate(time.Millisecond)
	at := followed.Add(time.Minute).In(tokyo).Format("15:04") // after the follow, before now
	f.publish("today", "never", fmt.Sprintf(`[
		{"id": "same-day", "type": "wait", "wait": {"days": 0, "at": %q}, "next": "later"},
		{"id": "later", "type": "wait", "wait": {"days": 2, "at": %q}, "next": "hello"},
		{"id": "hello", "type": "message", "message": {"messages": [{"type": "text", "text": "hi"}]}}]`, at, at))

	w := worker.New(f.temporal, f.queue, &activities.Activities{Store: f.store}, sdkworker.Options{})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)

	user := testenv.UserID()
	f.follow(user, followed)
	wid := workflows.EnrollmentWorkflowID(f.channel, "today", user)
	in := f.startInput(wid, "")
	if !in.EnrolledAt.Equal(followed) {
		t.Fatalf("started with EnrolledAt %s, want the follow's time %s", in.EnrolledAt, followed)
	}
	if in.Revision != workflows.Revision {
		t.Fatalf("started with Revision %d, want %d", in.Revision, workflows.Revision)
	}
	var st workflows.State
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := f.temporal.QueryWorkflow(context.Background(), wid, "", workflows.QueryState)
		if err == nil && v.Get(&st) == nil && st.NextDueAt != nil && st.Node == "later" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state = %+v (%v), want waiting at \"later\": the same-day step %s was due before the start", st, err, at)
		}
		time.Sleep(100 * time.Millisecond)
	}
	day := followed.In(tokyo)
	hm, _ := time.Parse("15:04", at)
	want := time.Date(day.Year(), day.Month(), day.Day()+2, hm.Hour(), hm.Minute(), 0, 0, tokyo)
	if !st.EnrolledAt.Equal(followed) || !st.NextDueAt.Equal(want) {
		t.Fatalf("state = %+v, want enrolled at %s and the next step at %s", st, followed, want)
	}
	// The Revision in the input spares every run a GetVersion marker and
	// its search-attribute upsert. The run starts with StepcastNode at its
	// entry wait, so the only upsert is the move to "later".
	it := f.temporal.GetWorkflowHistory(context.Background(), wid, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	node := func(sa *commonpb.SearchAttributes) string {
		var v string
		if p := sa.GetIndexedFields()[workflows.AttrNode.GetName()]; p != nil {
			if err := converter.GetDefaultDataConverter().FromPayload(p, &v); err != nil {
				t.Fatal(err)
			}
		}
		return v
	}
	var upserts []string
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if m := ev.GetMarkerRecordedEventAttributes(); m != nil && m.GetMarkerName() != "LocalActivity" {
			t.Fatalf("event %d is a %q marker; a run with a Revision records none but local activities'", ev.GetEventId(), m.GetMarkerName())
		}
		if a := ev.GetWorkflowExecutionStartedEventAttributes(); a != nil && node(a.GetSearchAttributes()) != "same-day" {
			t.Fatalf("started with StepcastNode %q, want the entry wait \"same-day\"", node(a.GetSearchAttributes()))
		}
		if a := ev.GetUpsertWorkflowSearchAttributesEventAttributes(); a != nil {
			upserts = append(upserts, node(a.GetSearchAttributes()))
		}
	}
	if !slices.Equal(upserts, []string{"later"}) {
		t.Fatalf("StepcastNode upserted to %q, want only [later]", upserts)
	}
}

// A follow applied twice enrolls once, wherever the first attempt
// stopped: after the friend's row, after the workflow's start (with the
// run still going, or ended since), or after the enrollment row.
func TestFollowAppliedAgainEnrollsOnce(t *testing.T) {
	f := newFixture(t)
	f.publish("welcome", "never", dayThenHello)
	ctx := context.Background()

	t.Run("redelivered", func(t *testing.T) {
		user, at := testenv.UserID(), time.Now()
		f.follow(user, at)
		f.follow(user, at)
		f.follow(user, at.Add(time.Second)) // a second follow event
		f.assertOnce(user)
	})
	t.Run("stopped after the friend's row", func(t *testing.T) {
		user, at := testenv.UserID(), time.Now()
		if _, _, err := f.store.ApplyFollow(ctx, f.channel, user, at); err != nil {
			t.Fatal(err)
		}
		f.follow(user, at)
		f.assertOnce(user)
	})
	t.Run("stopped after the start", func(t *testing.T) {
		user, at := testenv.UserID(), time.Now()
		f.follow(user, at)
		first := f.forgetEnrollment(user)
		f.follow(user, at)
		if e := f.assertOnce(user); e.RunID != first {
			t.Fatalf("enrolled in run %s, want the run started first, %s", e.RunID, first)
		}
	})
	t.Run("stopped after the start, run ended since", func(t *testing.T) {
		user, at := testenv.UserID(), time.Now()
		f.follow(user, at)
		first := f.forgetEnrollment(user)
		wid := workflows.EnrollmentWorkflowID(f.channel, "welcome", user)
		if err := f.temporal.TerminateWorkflow(ctx, wid, first, "the friend went through"); err != nil {
			t.Fatal(err)
		}
		f.follow(user, at)
		d, err := f.temporal.DescribeWorkflowExecution(ctx, wid, "")
		if err != nil {
			t.Fatal(err)
		}
		if run := d.WorkflowExecutionInfo.Execution.RunId; run != first {
			t.Fatalf("a second run %s of a never-again scenario started after the first (%s) ended", run, first)
		}
	})
}

// assertOnce checks that the friend has one enrollment and returns it.
func (f *fixture) assertOnce(user string) models.Enrollment {
	f.t.Helper()
	friend, err := f.store.Friend(context.Background(), f.channel, user)
	if err != nil {
		f.t.Fatal(err)
	}
	es, err := f.store.Enrollments(context.Background(), models.EnrollmentFilter{ChannelID: f.channel, FriendID: friend.ID}, models.Page{})
	if err != nil {
		f.t.Fatal(err)
	}
	if len(es) != 1 {
		f.t.Fatalf("%d enrollments of %s, want 1: %+v", len(es), user, es)
	}
	d, err := f.temporal.DescribeWorkflowExecution(context.Background(), es[0].WorkflowID, "")
	if err != nil {
		f.t.Fatal(err)
	}
	if run := d.WorkflowExecutionInfo.Execution.RunId; run != es[0].RunID {
		f.t.Fatalf("the workflow's latest run is %s, the enrollment's %s", run, es[0].RunID)
	}
	return es[0]
}

// forgetEnrollment deletes the friend's enrollment row, as if the process
// had stopped after the start and before writing it; it returns the run.
func (f *fixture) forgetEnrollment(user string) string {
	f.t.Helper()
	e := f.assertOnce(user)
	if err := f.store.DB.Delete(&models.Enrollment{}, e.ID).Error; err != nil {
		f.t.Fatal(err)
	}
	return e.RunID
}

// countingPool counts the statements, transaction starts and ends that go
// to the database: its round trips.
type countingPool struct {
	counter
}

// counter counts the statements of a pool or a transaction.
type counter struct {
	gorm.ConnPool
	n *atomic.Int64
}

func (c *counter) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	c.n.Add(1)
	return c.ConnPool.PrepareContext(ctx, query)
}

func (c *counter) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	c.n.Add(1)
	return c.ConnPool.ExecContext(ctx, query, args...)
}

func (c *counter) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	c.n.Add(1)
	return c.ConnPool.QueryContext(ctx, query, args...)
}

func (c *counter) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	c.n.Add(1)
	return c.ConnPool.QueryRowContext(ctx, query, args...)
}

func (p *countingPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	p.n.Add(1)
	tx, err := p.ConnPool.(*sql.DB).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &countingTx{counter{ConnPool: tx, n: p.n}, tx}, nil
}

func (p *countingPool) GetDBConn() (*sql.DB, error) {
	db, ok := p.ConnPool.(*sql.DB)
	if !ok {
		return nil, fmt.Errorf("not a *sql.DB: %T", p.ConnPool)
	}
	return db, nil
}

// countingTx is a transaction: it cannot begin another.
type countingTx struct {
	counter
	tx *sql.Tx
}

func (t *countingTx) Commit() error {
	t.n.Add(1)
	return t.tx.Commit()
}

func (t *countingTx) Rollback() error {
	t.n.Add(1)
	return t.tx.Rollback()
}

// A postback or chat message applied again (the inbox retrying after a
// partial failure, or replaying events it applied and had not marked) is
// recorded once and reaches each run once; a run that missed it gets it
// when it is applied again. No worker runs: a signal is in the run's
// history as soon as Temporal accepts it.
func TestEventAppliedAgainIsSignalledOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.publish("welcome", "never", dayThenHello)
	user, at := testenv.UserID(), time.Now().Truncate(time.Millisecond)
	f.follow(user, at)
	first := f.assertOnce(user)

	postback := func(eventID string) {
		t.Helper()
		if err := f.svc.Postback(ctx, f.channel, user, eventID, "survey=yes", at.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	postback("wh-1")
	postback("wh-1")
	if n := f.signals(first); n != 1 {
		t.Fatalf("the run got %d signals of one postback applied twice, want 1", n)
	}

	// A run that did not have the event: a second scenario the friend
	// was enrolled in since.
	sc, err := f.store.Scenario(ctx, f.publish("second", "never", dayThenHello).ID)
	if err != nil {
		t.Fatal(err)
	}
	v, err := f.store.ScenarioVersion(ctx, sc.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := scenario.Parse([]byte(v.Document))
	if err != nil {
		t.Fatal(err)
	}
	friend, err := f.store.Friend(ctx, f.channel, user)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Enroll(ctx, sc, v.Version, doc, friend); err != nil {
		t.Fatal(err)
	}
	es := f.enrollments()
	if len(es) != 2 {
		t.Fatalf("%d enrollments, want 2", len(es))
	}
	second := es[0]
	if second.ID == first.ID {
		second = es[1]
	}
	postback("wh-1")
	if a, b := f.signals(first), f.signals(second); a != 1 || b != 1 {
		t.Fatalf("after a third application: %d and %d signals, want 1 each", a, b)
	}

	// Another postback is another event; a chat message applied twice is
	// one event too.
	postback("wh-2")
	for range 2 {
		if err := f.svc.ChatMessage(ctx, f.channel, user, "wh-3", "hello", at.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := f.signals(first), f.signals(second); a != 3 || b != 3 {
		t.Fatalf("after two more events: %d and %d signals, want 3 each", a, b)
	}
	events, err := f.store.FriendEvents(ctx, friend.ID, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 3 {
		t.Fatalf("%d events recorded, want 3 (wh-1, wh-2, wh-3): %+v", len(events), events)
	}
}

// signals counts the friend-event signals in an enrollment's history.
func (f *fixture) signals(e models.Enrollment) int {
	f.t.Helper()
	it := f.temporal.GetWorkflowHistory(context.Background(), e.WorkflowID, e.RunID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			f.t.Fatal(err)
		}
		if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == workflows.SignalFriendEvent {
			n++
		}
	}
	return n
}

// In a scenario one may enter again after exiting, the same follow applied
// again after its run ended (the inbox replaying it, or LINE redelivering
// it after the inbox pruned its record) does not enroll the friend again;
// a later follow does.
func TestFollowAppliedAgainAfterItsRunEndedEnrollsOnce(t *testing.T) {
	f := newFixture(t)
	f.publish("again", "after_exit", dayThenHello)
	ctx := context.Background()
	user, t1 := testenv.UserID(), time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	// end stands for the run reaching its end: the run stops and its row
	// says so, as the workflow's last local activity does.
	end := func(e models.Enrollment) {
		t.Helper()
		if err := f.temporal.TerminateWorkflow(ctx, e.WorkflowID, e.RunID, "the friend went through"); err != nil {
			t.Fatal(err)
		}
		if err := f.store.FinishEnrollment(ctx, e, models.EnrollmentCompleted, "", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		t.Helper()
		friend, err := f.store.Friend(ctx, f.channel, user)
		if err != nil {
			t.Fatal(err)
		}
		es, err := f.store.Enrollments(ctx, models.EnrollmentFilter{ChannelID: f.channel, FriendID: friend.ID}, models.Page{})
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}

	f.follow(user, t1)
	first := f.assertOnce(user)
	if !first.FollowedAt.Equal(t1) {
		t.Fatalf("enrollment's follow time %s, want %s", first.FollowedAt, t1)
	}
	end(first)
	f.follow(user, t1)
	if n := count(); n != 1 {
		t.Fatalf("the same follow applied again after its run ended: %d enrollments, want 1", n)
	}

	// A block and a new follow: the friend enters again, once.
	if err := f.svc.Unfollow(ctx, f.channel, user, t1.Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	t3 := t1.Add(20 * time.Second)
	f.follow(user, t3)
	if n := count(); n != 2 {
		t.Fatalf("a follow after a block: %d enrollments, want 2", n)
	}
	es := f.enrollments()
	end(es[0])
	f.follow(user, t3)
	if n := count(); n != 2 {
		t.Fatalf("the second follow applied again after its run ended: %d enrollments, want 2", n)
	}
}

// A follow whose process stopped between the workflow's start and the
// enrollment row, in a scenario the friend may enter again: if the run
// ends before the follow is applied again, the run's end has written the
// row, so the follow finds it and does not start a second run.
func TestFollowAppliedAgainAfterItsUnrecordedRunEndedEnrollsOnce(t *testing.T) {
	f := newFixture(t)
	f.publish("hello", "after_exit", `[{"id": "bye", "type": "exit"}]`)
	w := worker.New(f.temporal, f.queue, &activities.Activities{Store: f.store}, sdkworker.Options{})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	ctx := context.Background()

	// The process stops after the start: its enrollment row is never
	// written (the service's store refuses it).
	var stopped atomic.Bool
	stopped.Store(true)
	err := f.svc.Store.DB.Callback().Create().Before("gorm:create").Register("test:stop", func(db *gorm.DB) {
		if db.Statement.Table == "enrollments" && stopped.Load() {
			_ = db.AddError(fmt.Errorf("the process stopped"))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	user, at := testenv.UserID(), time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	if err := f.svc.FollowIn(ctx, f.active(), f.channel, user, at); err == nil {
		t.Fatal("the follow was applied with its enrollment row refused")
	}
	wid := workflows.EnrollmentWorkflowID(f.channel, "hello", user)
	ctxRun, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var st workflows.State
	if err := f.temporal.GetWorkflow(ctxRun, wid, "").Get(ctxRun, &st); err != nil {
		t.Fatal(err)
	}
	if st.Status != workflows.StatusExited {
		t.Fatalf("the run ended %+v, want exited at its exit node", st)
	}

	stopped.Store(false)
	f.follow(user, at) // the inbox applies the follow again
	e := f.assertOnce(user)
	if e.Status != models.EnrollmentExited || !e.FollowedAt.Equal(at) || e.EndedAt == nil {
		t.Fatalf("enrollment %+v, want the first run's, exited, followed at %s", e, at)
	}
}
