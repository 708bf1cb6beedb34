package inbox_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"

	"github.com/stepcast/stepcast/enroll"
	"github.com/stepcast/stepcast/inbox"
	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/metrics"
	"github.com/stepcast/stepcast/models"
)

// fakeEnroller records what the dispatcher applies, per friend, and fails
// the test if two events of one friend are applied at once. Apply, when
// set, runs before an event counts as applied; its error fails the event.
type fakeEnroller struct {
	t     *testing.T
	Apply func(ctx context.Context, user, label string) error

	mu      sync.Mutex
	busy    map[string]bool
	applied map[string][]string // user → labels, in the order applied
	follows map[string][]models.ActiveScenario
}

var _ inbox.Enroller = (*fakeEnroller)(nil)

func newFake(t *testing.T) *fakeEnroller {
	return &fakeEnroller{t: t, busy: map[string]bool{}, applied: map[string][]string{}, follows: map[string][]models.ActiveScenario{}}
}

func (f *fakeEnroller) record(ctx context.Context, user, label string) error {
	f.mu.Lock()
	if f.busy[user] {
		f.t.Errorf("two events of %s applied at once (one of them %s)", user, label)
	}
	f.busy[user] = true
	f.mu.Unlock()
	var err error
	if f.Apply != nil {
		err = f.Apply(ctx, user, label)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.busy[user] = false
	if err == nil {
		f.applied[user] = append(f.applied[user], label)
	}
	return err
}

func (f *fakeEnroller) FollowIn(ctx context.Context, active []models.ActiveScenario, _ uint, userID string, at time.Time) error {
	f.mu.Lock()
	f.follows[userID] = active
	f.mu.Unlock()
	return f.record(ctx, userID, "follow")
}

func (f *fakeEnroller) Unfollow(ctx context.Context, _ uint, userID string, _ time.Time) error {
	return f.record(ctx, userID, "unfollow")
}

func (f *fakeEnroller) ChatMessage(ctx context.Context, _ uint, userID, eventID, text string, _ time.Time) error {
	f.checkEventID(eventID)
	return f.record(ctx, userID, text)
}

func (f *fakeEnroller) Postback(ctx context.Context, _ uint, userID, eventID, data string, _ time.Time) error {
	f.checkEventID(eventID)
	return f.record(ctx, userID, data)
}

// checkEventID checks that an event comes with its webhookEventId, which
// keeps it from being recorded twice when it is applied again.
func (f *fakeEnroller) checkEventID(id string) {
	if id == "" {
		f.t.Errorf("an event applied without its webhookEventId")
	}
}

func (f *fakeEnroller) labels(user string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.applied[user])
}

func (f *fakeEnroller) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, l := range f.applied {
		n += len(l)
	}
	return n
}

// message is an inbox row of a chat message whose text is label.
func message(channelID uint, user, label string) models.WebhookEvent {
	return models.WebhookEvent{ChannelID: channelID, WebhookEventID: "ev-" + user + "-" + label, Type: inbox.TypeMessage, UserID: user,
		Timestamp: time.Now(), ReceivedAt: time.Now(),
		Payload: fmt.Sprintf(`{"type":"message","message":{"type":"text","text":%q}}`, label)}
}

func insert(t *testing.T, store *models.Store, evs ...models.WebhookEvent) {
	t.Helper()
	if _, err := store.InsertWebhookEvents(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

// start runs a dispatcher with small batches until the test ends; stop
// ends it and waits for Run to return.
func start(t *testing.T, store *models.Store, e inbox.Enroller, m *metrics.Metrics) (d *inbox.Dispatcher, stop func()) {
	t.Helper()
	d = inbox.NewDispatcher(store, e, m, testenv.Logger())
	d.Poll, d.BatchSize, d.Lanes = 50*time.Millisecond, 8, 4
	return d, run(t, d)
}

// run runs d until the test ends or stop is called.
func run(t *testing.T, d *inbox.Dispatcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return within 10s of its context's end")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pending(t *testing.T, store *models.Store) int64 {
	t.Helper()
	n, err := store.WebhookBacklog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Each friend's events are applied once, in the order they arrived, never
// two at once, while events keep arriving in small batches and friends
// take turns on the lanes; all end marked processed.
func TestDispatcherKeepsEachFriendsOrder(t *testing.T) {
	store := testenv.Postgres(t)
	fake := newFake(t)
	fake.Apply = func(context.Context, string, string) error {
		time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
		return nil
	}
	m := metrics.New()
	d, _ := start(t, store, fake, m)

	const friends, perFriend = 12, 15
	total := 0
	for i := range perFriend {
		var batch []models.WebhookEvent
		for u := range friends {
			batch = append(batch, message(1, fmt.Sprintf("U%02d", u), fmt.Sprintf("m%02d", i)))
		}
		rand.Shuffle(len(batch), func(a, b int) { batch[a], batch[b] = batch[b], batch[a] })
		// Shuffled within a batch, so one friend's events are spread over
		// the rows; the order to keep is the order of the rows.
		for _, ev := range batch {
			insert(t, store, ev)
			total++
			d.Notify()
		}
	}
	waitFor(t, 30*time.Second, "every event applied and marked", func() bool {
		return fake.count() == total && pending(t, store) == 0
	})
	for u := range friends {
		user := fmt.Sprintf("U%02d", u)
		var want []string
		for i := range perFriend {
			want = append(want, fmt.Sprintf("m%02d", i))
		}
		if got := fake.labels(user); !slices.Equal(got, want) {
			t.Errorf("%s: applied %v, want %v", user, got, want)
		}
	}
	time.Sleep(100 * time.Millisecond) // a second read of the inbox applies nothing again
	if fake.count() != total {
		t.Fatalf("%d events applied, want %d", fake.count(), total)
	}
	waitFor(t, 5*time.Second, "the backlog gauge to read 0", func() bool {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return strings.Contains(rec.Body.String(), "\nstepcast_webhook_inbox_backlog 0\n")
	})
}

// A failing event holds only its friend: their later events wait behind
// it, other friends' events (older and newer) go on, and the failed event
// is tried again until it succeeds, then the friend's rest in order.
func TestDispatcherFailureHoldsOnlyThatFriend(t *testing.T) {
	store := testenv.Postgres(t)
	fake := newFake(t)
	var (
		mu       sync.Mutex
		failures = 0
		fix      = make(chan struct{})
	)
	fake.Apply = func(_ context.Context, user, label string) error {
		if user == "Ubad" && label == "m0" {
			select {
			case <-fix:
				return nil
			default:
			}
			mu.Lock()
			defer mu.Unlock()
			failures++
			return errors.New("temporal is down for this friend")
		}
		return nil
	}
	d, _ := start(t, store, fake, nil)
	insert(t, store, message(1, "Ugood", "m0"), message(1, "Ubad", "m0"), message(1, "Ubad", "m1"), message(1, "Ugood", "m1"))
	d.Notify()
	waitFor(t, 10*time.Second, "the other friend's events", func() bool { return len(fake.labels("Ugood")) == 2 })
	waitFor(t, 10*time.Second, "a second failure (the event tried again)", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return failures >= 2
	})
	// Events arriving while the friend is held: the other friend's apply.
	insert(t, store, message(1, "Ubad", "m2"), message(1, "Ugood", "m2"))
	d.Notify()
	waitFor(t, 10*time.Second, "the other friend's new event", func() bool { return len(fake.labels("Ugood")) == 3 })
	if got := fake.labels("Ubad"); len(got) != 0 {
		t.Fatalf("events of the failing friend applied past its failed event: %v", got)
	}
	var failed models.WebhookEvent
	if err := store.DB.Where("webhook_event_id = ?", "ev-Ubad-m0").First(&failed).Error; err != nil {
		t.Fatal(err)
	}
	if failed.ProcessedAt != nil || failed.Attempts < 1 || !strings.Contains(failed.LastError, "temporal is down") {
		t.Fatalf("failed event = %+v, want pending with its attempts and error", failed)
	}

	close(fix)
	waitFor(t, 10*time.Second, "the failed friend's events", func() bool { return len(fake.labels("Ubad")) == 3 })
	if got := fake.labels("Ubad"); !slices.Equal(got, []string{"m0", "m1", "m2"}) {
		t.Fatalf("the failed friend's events applied as %v, want m0 m1 m2", got)
	}
	waitFor(t, 5*time.Second, "everything marked", func() bool { return pending(t, store) == 0 })
	if err := store.DB.First(&failed, failed.ID).Error; err != nil {
		t.Fatal(err)
	}
	if failed.LastError != "" || failed.ProcessedAt == nil {
		t.Fatalf("event retried successfully = %+v", failed)
	}
}

// One friend whose apply takes long holds up nobody else: the fetcher
// keeps reading and handing out other friends' events, many batches' worth,
// while that friend's event is still being applied.
func TestDispatcherSlowFriendDoesNotStallOthers(t *testing.T) {
	store := testenv.Postgres(t)
	fake := newFake(t)
	release := make(chan struct{})
	fake.Apply = func(_ context.Context, user, label string) error {
		if user == "Uslow" {
			<-release
		}
		return nil
	}
	d, _ := start(t, store, fake, nil)
	insert(t, store, message(1, "Uslow", "m0"), message(1, "Uslow", "m1"))
	d.Notify()
	var evs []models.WebhookEvent
	for i := range 100 { // more than 12 batches of 8
		evs = append(evs, message(1, fmt.Sprintf("U%03d", i), "m0"))
	}
	insert(t, store, evs...)
	d.Notify()
	waitFor(t, 20*time.Second, "100 other friends' events while one friend's apply is stuck", func() bool { return fake.count() == 100 })
	if len(fake.labels("Uslow")) != 0 {
		t.Fatal("the stuck friend's event counted as applied")
	}
	close(release)
	waitFor(t, 10*time.Second, "the slow friend's two events", func() bool { return len(fake.labels("Uslow")) == 2 })
	waitFor(t, 5*time.Second, "everything marked", func() bool { return pending(t, store) == 0 })
}

// Stopping: Run returns although an event is being applied; events applied
// before are marked processed (not applied again by the next dispatcher);
// the one cut short stays pending, and the next dispatcher applies it.
func TestDispatcherStopsOnCancel(t *testing.T) {
	store := testenv.Postgres(t)
	fake := newFake(t)
	stuck := make(chan struct{})
	fake.Apply = func(ctx context.Context, user, label string) error {
		if label == "m1" {
			// Temporal does not answer: the call ends with the context.
			close(stuck)
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	insert(t, store, message(1, "U1", "m0"), message(1, "U1", "m1"))
	d, stop := start(t, store, fake, nil)
	d.Notify()
	<-stuck
	stop()
	if got := fake.labels("U1"); !slices.Equal(got, []string{"m0"}) {
		t.Fatalf("applied %v before the stop, want m0", got)
	}
	var evs []models.WebhookEvent
	if err := store.DB.Order("id").Find(&evs).Error; err != nil {
		t.Fatal(err)
	}
	if evs[0].ProcessedAt == nil || evs[1].ProcessedAt != nil || evs[1].Attempts != 0 {
		t.Fatalf("after the stop: m0 processed at %v; m1 processed at %v, %d attempts; want m0 marked and m1 pending, untried",
			evs[0].ProcessedAt, evs[1].ProcessedAt, evs[1].Attempts)
	}
}

// Two dispatchers on one database (two API replicas): the lease lets one
// apply, so every event is applied once. The one that stops hands the
// lease over: the other applies new events well before the lease would
// have expired.
func TestDispatcherLease(t *testing.T) {
	store := testenv.Postgres(t)
	var (
		mu sync.Mutex
		by = map[string]string{} // label → dispatcher
	)
	fakes := map[string]*fakeEnroller{}
	stops := map[string]func(){}
	for _, name := range []string{"a", "b"} {
		fake := newFake(t)
		fake.Apply = func(_ context.Context, user, label string) error {
			mu.Lock()
			defer mu.Unlock()
			if other, ok := by[user+label]; ok {
				t.Errorf("%s %s applied by %s and %s", user, label, other, name)
			}
			by[user+label] = name
			return nil
		}
		fakes[name] = fake
		_, stops[name] = start(t, store, fake, nil)
	}
	var evs []models.WebhookEvent
	for i := range 40 {
		evs = append(evs, message(1, fmt.Sprintf("U%02d", i%7), fmt.Sprintf("m%02d", i)))
	}
	insert(t, store, evs...)
	waitFor(t, 10*time.Second, "every event applied", func() bool { return fakes["a"].count()+fakes["b"].count() == 40 })
	if fakes["a"].count() != 0 && fakes["b"].count() != 0 {
		t.Fatalf("both dispatchers applied events (a %d, b %d)", fakes["a"].count(), fakes["b"].count())
	}

	leader, other := "a", "b"
	if fakes["b"].count() != 0 {
		leader, other = "b", "a"
	}
	stops[leader]()
	stopped := time.Now()
	insert(t, store, message(1, "U99", "after"))
	waitFor(t, 10*time.Second, "the other dispatcher to apply a new event", func() bool { return fakes[other].count() == 1 })
	// The lease lasts 15 s; the other dispatcher polls every 50 ms.
	if took := time.Since(stopped); took > 5*time.Second {
		t.Fatalf("the other dispatcher took over %s after the stop: the lease was not released", took)
	}
}

// Through the real enrollment service and Temporal: follows from many
// friends, some of them delivered twice or followed twice, enroll each
// friend once; a scenario published while the dispatcher runs is there for
// the follows that arrive after it.
func TestDispatcherEnrollsFollows(t *testing.T) {
	store := testenv.Postgres(t)
	ctx := context.Background()
	svc := &enroll.Service{Store: store, Temporal: testenv.Temporal(t), TaskQueue: "inbox-test-" + strings.ToLower(testenv.UserID()[1:9]),
		Log: testenv.Logger()}
	d, _ := start(t, store, svc, nil)
	ch := &models.Channel{Name: "shop", LineChannelID: testenv.UserID(), Secret: "s", AccessToken: "t", TimeZone: "Asia/Tokyo"}
	if err := store.CreateChannel(ctx, ch); err != nil {
		t.Fatal(err)
	}
	// Before the scenario: a follow that enrolls nobody.
	early := testenv.UserID()
	insert(t, store, follow(ch.ID, early, "early", time.Now()))
	d.Notify()
	waitFor(t, 10*time.Second, "the early follow", func() bool { return pending(t, store) == 0 })

	publishWelcome(t, store, ch.ID)
	users := map[string]bool{}
	var evs []models.WebhookEvent
	for i := range 40 {
		u := testenv.UserID()
		users[u] = true
		at := time.Now()
		evs = append(evs, follow(ch.ID, u, "a", at))
		if i%4 == 0 {
			evs = append(evs, follow(ch.ID, u, "b", at.Add(time.Second)))
		}
	}
	insert(t, store, evs...)
	insert(t, store, evs[:10]...) // LINE redelivers: dropped by webhookEventId
	d.Notify()
	waitFor(t, 30*time.Second, "every follow applied", func() bool { return pending(t, store) == 0 })
	es, err := store.Enrollments(ctx, models.EnrollmentFilter{ChannelID: ch.ID}, models.Page{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint]bool{}
	for _, e := range es {
		if seen[e.FriendID] {
			t.Errorf("friend %d enrolled twice", e.FriendID)
		}
		seen[e.FriendID] = true
	}
	if len(es) != len(users) {
		t.Fatalf("%d enrollments for %d friends", len(es), len(users))
	}
	f, err := store.Friend(ctx, ch.ID, early)
	if err != nil {
		t.Fatal(err)
	}
	if es, _ := store.Enrollments(ctx, models.EnrollmentFilter{ChannelID: ch.ID, FriendID: f.ID}, models.Page{}); len(es) != 0 {
		t.Fatalf("a follow applied before the scenario was published enrolled: %+v", es)
	}
}

// publishWelcome publishes a scenario that enrolls every follow and waits
// a day.
func publishWelcome(t *testing.T, store *models.Store, channelID uint) {
	t.Helper()
	ctx := context.Background()
	doc := `{"name": "Welcome", "start": {"type": "follow"}, "nodes": [
		{"id": "day-1", "type": "wait", "wait": {"days": 1, "at": "10:00"}, "next": "hello"},
		{"id": "hello", "type": "message", "message": {"messages": [{"type": "text", "text": "hi"}]}}]}`
	sc := &models.Scenario{ChannelID: channelID, Key: "welcome", Name: "Welcome", Draft: doc}
	if err := store.CreateScenario(ctx, sc); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Publish(ctx, sc.ID, doc, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// follow is an inbox row of a follow; id tells the friend's events apart.
func follow(channelID uint, user, id string, at time.Time) models.WebhookEvent {
	return models.WebhookEvent{ChannelID: channelID, WebhookEventID: "follow-" + user + "-" + id, Type: inbox.TypeFollow, UserID: user,
		Timestamp: at.UTC().Truncate(time.Millisecond), ReceivedAt: time.Now(),
		Payload: fmt.Sprintf(`{"type":"follow","timestamp":%d,"source":{"type":"user","userId":%q}}`, at.UnixMilli(), user)}
}

// A dispatcher that stopped after applying a postback and before marking
// it leaves it pending; the next one applies it again. Through the real
// enrollment service and Temporal, the friend's run still gets it once and
// it is recorded once.
func TestDispatcherReplayedPostbackReachesTheRunOnce(t *testing.T) {
	store := testenv.Postgres(t)
	ctx := context.Background()
	tc := testenv.Temporal(t)
	svc := &enroll.Service{Store: store, Temporal: tc, TaskQueue: "inbox-test-" + strings.ToLower(testenv.UserID()[1:9]), Log: testenv.Logger()}
	ch := &models.Channel{Name: "shop", LineChannelID: testenv.UserID(), Secret: "s", AccessToken: "t", TimeZone: "Asia/Tokyo"}
	if err := store.CreateChannel(ctx, ch); err != nil {
		t.Fatal(err)
	}
	publishWelcome(t, store, ch.ID)
	user := testenv.UserID()
	pb := models.WebhookEvent{ChannelID: ch.ID, WebhookEventID: "postback-" + user, Type: inbox.TypePostback, UserID: user,
		Timestamp: time.Now().Add(time.Second).UTC().Truncate(time.Millisecond), ReceivedAt: time.Now(),
		Payload: `{"type":"postback","postback":{"data":"survey=yes"}}`}
	insert(t, store, follow(ch.ID, user, "a", time.Now()), pb)
	d, stop := start(t, store, svc, nil)
	d.Notify()
	waitFor(t, 30*time.Second, "both events applied", func() bool { return pending(t, store) == 0 })
	stop()

	// As if the postback's mark had not been written.
	if err := store.DB.Model(&models.WebhookEvent{}).Where("webhook_event_id = ?", pb.WebhookEventID).
		Update("processed_at", nil).Error; err != nil {
		t.Fatal(err)
	}
	d, _ = start(t, store, svc, nil)
	d.Notify()
	waitFor(t, 30*time.Second, "the postback applied again", func() bool { return pending(t, store) == 0 })

	f, err := store.Friend(ctx, ch.ID, user)
	if err != nil {
		t.Fatal(err)
	}
	if evs, err := store.FriendEvents(ctx, f.ID, time.Time{}); err != nil || len(evs) != 1 {
		t.Fatalf("events recorded: %+v (%v), want the postback once", evs, err)
	}
	es, err := store.Enrollments(ctx, models.EnrollmentFilter{ChannelID: ch.ID, FriendID: f.ID}, models.Page{})
	if err != nil || len(es) != 1 {
		t.Fatalf("enrollments: %+v (%v), want one", es, err)
	}
	it := tc.GetWorkflowHistory(ctx, es[0].WorkflowID, es[0].RunID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	signals := 0
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.GetWorkflowExecutionSignaledEventAttributes() != nil {
			signals++
		}
	}
	if signals != 1 {
		t.Fatalf("the run got %d signals of the postback applied twice, want 1", signals)
	}
}

// The dispatcher holding the lease prunes events processed longer ago than
// its retention, and keeps newer and pending ones; with no retention it
// keeps them all.
func TestDispatcherPrunesProcessedEvents(t *testing.T) {
	for name, keep := range map[string]bool{"1h retention": false, "no retention": true} {
		t.Run(name, func(t *testing.T) {
			store := testenv.Postgres(t)
			ctx := context.Background()
			fake := newFake(t)
			fake.Apply = func(ctx context.Context, user, _ string) error {
				if user == "Uheld" {
					<-ctx.Done() // pending while the pruner runs
					return ctx.Err()
				}
				return nil
			}
			insert(t, store, message(1, "Uold", "a"), message(1, "Unew", "b"), message(1, "Uheld", "c"))
			evs, err := store.PendingWebhookEvents(ctx, 0, 10)
			if err != nil || len(evs) != 3 {
				t.Fatalf("pending = %d, %v", len(evs), err)
			}
			old := time.Now().Add(-2 * time.Hour)
			if err := store.MarkWebhookEventsProcessed(ctx, []uint{evs[0].ID}, old); err != nil {
				t.Fatal(err)
			}
			if err := store.MarkWebhookEventsProcessed(ctx, []uint{evs[1].ID}, time.Now()); err != nil {
				t.Fatal(err)
			}

			d := inbox.NewDispatcher(store, fake, nil, testenv.Logger())
			d.Poll, d.Retention = 20*time.Millisecond, time.Hour
			if keep {
				d.Retention = 0
			}
			run(t, d)
			d.Notify()
			count := func() int64 {
				var n int64
				if err := store.DB.Model(&models.WebhookEvent{}).Count(&n).Error; err != nil {
					t.Fatal(err)
				}
				return n
			}
			if keep {
				// Give a pruner the time it would need, then look.
				time.Sleep(300 * time.Millisecond)
				if n := count(); n != 3 {
					t.Fatalf("%d events left with no retention, want 3", n)
				}
				return
			}
			waitFor(t, 10*time.Second, "the old event pruned", func() bool { return count() == 2 })
			var left []models.WebhookEvent
			if err := store.DB.Order("id").Find(&left).Error; err != nil {
				t.Fatal(err)
			}
			if len(left) != 2 || left[0].ID != evs[1].ID || left[1].ID != evs[2].ID {
				t.Fatalf("left %+v, want the recent and the pending event", left)
			}
		})
	}
}
