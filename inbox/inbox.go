// Package inbox is the durable webhook inbox. The webhook handler stores
// LINE's events and answers at once; the Dispatcher applies them (friends,
// enrollments, signals) behind it. An event that cannot be applied now
// (Temporal or the database briefly down) stays in the inbox and is tried
// again, so nothing LINE delivered is lost and LINE's one-second answer does
// not wait on Temporal.
package inbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/line/line-bot-sdk-go/v8/linebot/webhook"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/enroll"
	"github.com/stepcast/stepcast/metrics"
	"github.com/stepcast/stepcast/models"
)

// Event types that the dispatcher applies; others are stored and marked
// processed.
const (
	TypeFollow   = "follow"
	TypeUnfollow = "unfollow"
	TypeMessage  = "message"
	TypePostback = "postback"
)

// Decode turns a webhook body into inbox rows for the channel. Events
// without a webhookEventId cannot be deduplicated and are refused. Keys
// are read exactly as LINE writes them ("type", not "Type"), as the SDK
// does, and text a database cannot store (invalid UTF-8, NUL) is refused.
func Decode(channelID uint, body []byte, now time.Time) ([]models.WebhookEvent, error) {
	if !utf8.Valid(body) {
		return nil, stepcast.Errorf(stepcast.EINVALID, "webhook body is not valid UTF-8")
	}
	var req struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, stepcast.Errorf(stepcast.EINVALID, "webhook body is not valid JSON: %v", err)
	}
	out := make([]models.WebhookEvent, 0, len(req.Events))
	for i, raw := range req.Events {
		ev, err := decodeEvent(raw)
		if err != nil {
			return nil, stepcast.Errorf(stepcast.EINVALID, "events[%d]: %v", i, err)
		}
		// The SDK's own model checks the shape of the event types it knows.
		if _, err := webhook.UnmarshalEvent(raw); err != nil {
			return nil, stepcast.Errorf(stepcast.EINVALID, "events[%d] is not a valid %s event: %v", i, ev.Type, err)
		}
		ev.ChannelID, ev.Payload, ev.ReceivedAt = channelID, string(raw), now.UTC()
		out = append(out, ev)
	}
	return out, nil
}

// decodeEvent reads the fields the inbox keeps, by their exact keys.
func decodeEvent(raw json.RawMessage) (models.WebhookEvent, error) {
	var ev models.WebhookEvent
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return ev, fmt.Errorf("is not a webhook event: %w", err)
	}
	str := func(m map[string]json.RawMessage, key string) (string, error) {
		var s string
		if v, ok := m[key]; ok {
			if err := json.Unmarshal(v, &s); err != nil {
				return "", fmt.Errorf("%s is not a string", key)
			}
		}
		if strings.ContainsRune(s, 0) {
			return "", fmt.Errorf("%s contains a NUL character", key)
		}
		return s, nil
	}
	var err error
	if ev.Type, err = str(m, "type"); err != nil {
		return ev, err
	}
	if ev.WebhookEventID, err = str(m, "webhookEventId"); err != nil {
		return ev, err
	}
	if ev.Type == "" || ev.WebhookEventID == "" {
		return ev, errors.New("has no type or webhookEventId")
	}
	var ts int64
	if v, ok := m["timestamp"]; ok {
		if err := json.Unmarshal(v, &ts); err != nil {
			return ev, errors.New("timestamp is not a number")
		}
	}
	ev.Timestamp = time.UnixMilli(ts).UTC()
	var source map[string]json.RawMessage
	if v, ok := m["source"]; ok && json.Unmarshal(v, &source) == nil {
		if ev.UserID, err = str(source, "userId"); err != nil {
			return ev, err
		}
	}
	var dc map[string]json.RawMessage
	if v, ok := m["deliveryContext"]; ok && json.Unmarshal(v, &dc) == nil {
		_ = json.Unmarshal(dc["isRedelivery"], &ev.Redelivery)
	}
	return ev, nil
}

// Enroller applies what friends do; *enroll.Service is the real one.
type Enroller interface {
	// FollowIn applies a follow, given the channel's active scenarios as
	// read after the follow was received.
	FollowIn(ctx context.Context, active []models.ActiveScenario, channelID uint, userID string, at time.Time) error
	Unfollow(ctx context.Context, channelID uint, userID string, at time.Time) error
	// ChatMessage and Postback get the webhook event's ID, which keeps
	// them from being recorded twice when applied again.
	ChatMessage(ctx context.Context, channelID uint, userID, eventID, text string, at time.Time) error
	Postback(ctx context.Context, channelID uint, userID, eventID, data string, at time.Time) error
}

var _ Enroller = (*enroll.Service)(nil)

// Dispatcher applies inbox events. One friend's events are applied in the
// order they arrived, one at a time; different friends' events in
// parallel, since each follow waits on Temporal to start its workflows.
//
// One fetcher reads the inbox and hands events out; Lanes long-lived lanes
// apply them, each taking a friend and applying that friend's events in
// order; a marker marks applied events processed, many in one statement.
// The fetcher reads more while the lanes work, so one slow friend holds up
// only its own lane.
type Dispatcher struct {
	Store   *models.Store
	Enroll  Enroller
	Metrics *metrics.Metrics
	Log     *slog.Logger
	// Poll is how often the inbox is checked when nobody calls Notify, and
	// how long a friend whose event failed waits before it is tried again.
	Poll time.Duration
	// BatchSize bounds one read of the inbox and the events handed out and
	// not yet applied.
	BatchSize int
	// Lanes is how many friends' events are applied at once.
	Lanes int
	// Holder names this dispatcher in the lease that lets only one of
	// several API replicas dispatch at a time.
	Holder string
	// Retention is how long processed events are kept; 0 keeps them. The
	// inbox is the webhookEventId record that drops LINE's redeliveries,
	// which come within minutes of a failed delivery, and the raw payloads
	// for looking into a problem; kept forever it would grow with every
	// message and postback. An event applied again after it was pruned
	// changes nothing: a follow enrolls once, and a postback or a chat
	// message is recorded once by its webhookEventId.
	Retention time.Duration

	wake    chan struct{}
	leading atomic.Bool
}

// DefaultRetention is NewDispatcher's Retention.
const DefaultRetention = 7 * 24 * time.Hour

// pruneEvery is how often the lease holder prunes processed events;
// pruneBatch bounds one statement, and a round goes on while batches come
// back full, up to pruneRound.
const (
	pruneEvery = time.Hour
	pruneBatch = 5000
	pruneRound = 100
)

// leaseTTL is how long a dispatcher's lease lasts without renewal: a
// replica that dies hands the inbox over after this. The holder renews it
// after a third of that.
const leaseTTL = 15 * time.Second

// markEvery is how long an applied event waits at most for its mark. An
// event applied and not yet marked when the process dies is applied again
// by the next dispatcher, as it was before marks were batched if the process
// died between the two; applying is idempotent: a follow enrolls once, and a
// postback or a chat message is recorded and signalled once (its
// webhookEventId is its key).
const markEvery = 100 * time.Millisecond

// NewDispatcher returns a dispatcher with default settings.
func NewDispatcher(store *models.Store, svc Enroller, m *metrics.Metrics, log *slog.Logger) *Dispatcher {
	host, _ := os.Hostname()
	return &Dispatcher{Store: store, Enroll: svc, Metrics: m, Log: log, Poll: time.Second, BatchSize: 500, Lanes: 16,
		Holder: fmt.Sprintf("%s/%d/%d", host, os.Getpid(), time.Now().UnixNano()), Retention: DefaultRetention,
		wake: make(chan struct{}, 1)}
}

// Notify wakes the dispatcher after new events were stored.
func (d *Dispatcher) Notify() {
	signal(d.wake)
}

// Run applies events until ctx ends. Events being applied then are given
// up (they stay pending); events applied are marked processed, and the
// lease released, before Run returns, if the database answers within a few
// seconds.
func (d *Dispatcher) Run(ctx context.Context) error {
	q := newQueue(max(d.BatchSize, 1))
	var wg sync.WaitGroup
	for range max(d.Lanes, 1) {
		wg.Go(func() { d.lane(ctx, q) })
	}
	wg.Go(func() { d.marker(ctx, q) })
	if d.Retention > 0 {
		wg.Go(func() { d.pruner(ctx) })
	}
	d.fetchLoop(ctx, q)
	q.close()
	wg.Wait()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := d.mark(fctx, q); err != nil {
		d.Log.WarnContext(ctx, "webhook inbox: applied events not marked; they will be applied again", "error", err)
	}
	// Another replica takes over now rather than when the lease expires,
	// so a rolling restart does not hold the inbox up for leaseTTL.
	if err := d.Store.ReleaseLease(fctx, "inbox", d.Holder); err != nil {
		d.Log.WarnContext(ctx, "webhook inbox: lease not released; another replica takes over when it expires", "error", err)
	}
	return nil
}

// fetchGap is the least time between two reads of the inbox that follow
// a wake-up: at a steady trickle of webhooks (each calls Notify), a read
// then takes several events instead of one.
const fetchGap = 20 * time.Millisecond

// reader is where the fetcher is in the inbox.
//
// It reads in passes: each read continues after the last event the pass
// went through, so events handed out are not read again and a backlog is
// read page after page. A pass starts again from the beginning once it is
// Poll old (events that committed late, behind the cursor, are not left
// behind longer), when a held friend may be tried again, and after the
// queue was dropped. A friend's events seen while the friend is held are
// left pending, and a hold ends only when a pass starts, so the friend's
// failed event is handed out again before any later one.
type reader struct {
	cursor  uint      // the last event the pass went through; 0: start a pass
	passAt  time.Time // when the pass started
	countAt time.Time // when the backlog was last counted
}

// fetchLoop reads the inbox while this dispatcher holds the lease and
// hands the events out, until ctx ends.
func (d *Dispatcher) fetchLoop(ctx context.Context, q *queue) {
	var (
		r       reader
		renewed time.Time // when the lease was last renewed
	)
	for ctx.Err() == nil {
		leader, err := d.lead(ctx, &renewed)
		if err != nil || !leader {
			if err != nil && ctx.Err() == nil {
				d.Log.WarnContext(ctx, "webhook inbox: lease", "error", err)
			}
			q.drop()
			r.cursor = 0
			d.sleep(ctx, d.wake, d.Poll)
			continue
		}
		if q.size() > q.capacity/2 {
			// Enough to do: wait for room, or for the lease's renewal.
			d.sleep(ctx, q.room, d.Poll)
			continue
		}
		more, err := d.fetch(ctx, q, &r)
		if err != nil {
			if ctx.Err() == nil {
				d.Log.WarnContext(ctx, "webhook inbox: will retry", "error", err)
			}
			d.sleep(ctx, d.wake, d.Poll)
			continue
		}
		if more {
			continue
		}
		d.sleep(ctx, d.wake, d.Poll)
		d.sleep(ctx, nil, fetchGap)
	}
}

// sleep waits for ctx, a signal on wake, or the time.
func (d *Dispatcher) sleep(ctx context.Context, wake <-chan struct{}, t time.Duration) {
	timer := time.NewTimer(t)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-wake:
	case <-timer.C:
	}
}

// lead reports whether this dispatcher holds the lease, renewing it when a
// third of its time has passed.
func (d *Dispatcher) lead(ctx context.Context, renewed *time.Time) (bool, error) {
	now := time.Now()
	if !renewed.IsZero() && now.Sub(*renewed) < leaseTTL/3 {
		return true, nil
	}
	ok, err := d.Store.AcquireLease(ctx, "inbox", d.Holder, leaseTTL)
	d.leading.Store(err == nil && ok)
	if err != nil || !ok {
		*renewed = time.Time{}
		return false, err
	}
	*renewed = now
	return true, nil
}

// pruner deletes events processed more than Retention ago, once this
// dispatcher holds the lease and every pruneEvery after, until ctx ends.
func (d *Dispatcher) pruner(ctx context.Context) {
	var next time.Time
	for ctx.Err() == nil {
		if now := time.Now(); d.leading.Load() && !now.Before(next) {
			n, err := d.prune(ctx)
			if err != nil && ctx.Err() == nil {
				d.Log.WarnContext(ctx, "webhook inbox: prune; will retry", "error", err)
			}
			if n > 0 {
				d.Log.InfoContext(ctx, "webhook inbox: pruned processed events", "events", n, "retention", d.Retention.String())
			}
			next = now.Add(pruneEvery)
		}
		d.sleep(ctx, nil, d.Poll)
	}
}

// prune deletes one round of old processed events.
func (d *Dispatcher) prune(ctx context.Context) (int64, error) {
	cutoff := time.Now().Add(-d.Retention)
	var total int64
	for range pruneRound {
		n, err := d.Store.PruneWebhookEvents(ctx, cutoff, pruneBatch)
		total += n
		if err != nil || n < pruneBatch {
			return total, err
		}
	}
	return total, nil
}

// fetch reads a page of the inbox and hands its events out. It reports
// whether to read again at once: the page was full and all of it found
// room.
func (d *Dispatcher) fetch(ctx context.Context, q *queue, r *reader) (bool, error) {
	now := time.Now()
	if r.cursor != 0 && (now.Sub(r.passAt) >= d.Poll || q.holdExpired(now)) {
		r.cursor = 0
	}
	pass := r.cursor == 0
	if pass {
		r.passAt = now
	}
	q.beginFetch(now, pass)
	events, err := d.Store.PendingWebhookEvents(ctx, r.cursor, d.BatchSize)
	if err != nil {
		return false, err
	}
	full := len(events) == d.BatchSize
	if d.Metrics != nil {
		// A short read from the beginning sees every pending event; else
		// count them, once per Poll.
		if pass && !full {
			d.Metrics.WebhookBacklog.Set(float64(len(events)))
			r.countAt = now
		} else if now.Sub(r.countAt) >= d.Poll {
			n, err := d.Store.WebhookBacklog(ctx)
			if err != nil {
				return false, err
			}
			d.Metrics.WebhookBacklog.Set(float64(n))
			r.countAt = now
		}
	}
	fresh, through := q.fresh(events)
	jobs, err := d.jobs(ctx, fresh)
	if err != nil {
		return false, err
	}
	q.add(jobs)
	if through == 0 {
		return false, nil
	}
	r.cursor = events[through-1].ID
	return full && through == len(events), nil
}

// jobs pairs each follow with its channel's active scenarios, read once per
// channel now: after the events were stored, so a scenario published
// before a follow arrived is among them.
func (d *Dispatcher) jobs(ctx context.Context, events []models.WebhookEvent) ([]job, error) {
	active := map[uint][]models.ActiveScenario{}
	jobs := make([]job, len(events))
	for i, ev := range events {
		jobs[i].ev = ev
		if ev.Type != TypeFollow || ev.UserID == "" {
			continue
		}
		scs, ok := active[ev.ChannelID]
		if !ok {
			var err error
			if scs, err = d.Store.ActiveScenarios(ctx, ev.ChannelID); err != nil {
				return nil, err
			}
			active[ev.ChannelID] = scs
		}
		jobs[i].active = scs
	}
	return jobs, nil
}

// lane applies friends' events until the queue closes. It stops at a
// friend's failed event: the event stays pending, and the friend is held for
// Poll before the fetcher hands it out again.
func (d *Dispatcher) lane(ctx context.Context, q *queue) {
	for {
		k, j, ok := q.take()
		if !ok {
			return
		}
		for ok {
			err := d.apply(ctx, &j.ev, j.active)
			var hold time.Duration
			if err != nil && ctx.Err() == nil {
				d.Log.WarnContext(ctx, "webhook inbox: will retry", "event", j.ev.WebhookEventID, "type", j.ev.Type, "error", err)
				if merr := d.Store.MarkWebhookEventFailed(ctx, j.ev.ID, err); merr != nil {
					d.Log.WarnContext(ctx, "webhook inbox: record failure", "error", merr)
				}
				hold = d.Poll
			}
			j, ok = q.done(k, j.ev.ID, err, time.Now(), hold)
		}
	}
}

// marker marks applied events processed, every markEvery or sooner when
// many wait, until ctx ends.
func (d *Dispatcher) marker(ctx context.Context, q *queue) {
	tick := time.NewTicker(markEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-q.flush:
		}
		if err := d.mark(ctx, q); err != nil && ctx.Err() == nil {
			d.Log.WarnContext(ctx, "webhook inbox: mark processed; will retry", "error", err)
		}
	}
}

// mark marks the applied events processed, in one statement.
func (d *Dispatcher) mark(ctx context.Context, q *queue) error {
	ids := q.takeApplied()
	if len(ids) == 0 {
		return nil
	}
	err := d.Store.MarkWebhookEventsProcessed(ctx, ids, time.Now())
	q.markDone(ids, err)
	return err
}

func (d *Dispatcher) apply(ctx context.Context, ev *models.WebhookEvent, active []models.ActiveScenario) error {
	if ev.UserID == "" {
		return nil
	}
	switch ev.Type {
	case TypeFollow:
		return d.Enroll.FollowIn(ctx, active, ev.ChannelID, ev.UserID, ev.Timestamp)
	case TypeUnfollow:
		return d.Enroll.Unfollow(ctx, ev.ChannelID, ev.UserID, ev.Timestamp)
	case TypeMessage:
		var m struct {
			Message struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"message"`
		}
		if err := json.Unmarshal([]byte(ev.Payload), &m); err != nil || m.Message.Type != "text" {
			return err
		}
		return d.Enroll.ChatMessage(ctx, ev.ChannelID, ev.UserID, ev.WebhookEventID, m.Message.Text, ev.Timestamp)
	case TypePostback:
		var p struct {
			Postback struct {
				Data string `json:"data"`
			} `json:"postback"`
		}
		if err := json.Unmarshal([]byte(ev.Payload), &p); err != nil {
			return err
		}
		return d.Enroll.Postback(ctx, ev.ChannelID, ev.UserID, ev.WebhookEventID, p.Postback.Data, ev.Timestamp)
	}
	return nil
}
