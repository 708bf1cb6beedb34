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
	"hash/fnv"
	"log/slog"
	"os"
	"strings"
	"sync"
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

// Dispatcher applies inbox events. One friend's events are applied in the
// order they arrived; different friends' events in parallel, since each
// follow waits on Temporal to start its workflows.
type Dispatcher struct {
	Store   *models.Store
	Enroll  *enroll.Service
	Metrics *metrics.Metrics
	Log     *slog.Logger
	// Poll is how often the inbox is checked when nobody calls Notify, and
	// the wait after a failure.
	Poll time.Duration
	// BatchSize bounds one read of the inbox.
	BatchSize int
	// Lanes is how many friends' events are applied at once.
	Lanes int
	// Holder names this dispatcher in the lease that lets only one of
	// several API replicas dispatch at a time.
	Holder string

	wake chan struct{}
}

// leaseTTL is how long a dispatcher's lease lasts without renewal: a
// replica that dies hands the inbox over after this.
const leaseTTL = 15 * time.Second

// NewDispatcher returns a dispatcher with default settings.
func NewDispatcher(store *models.Store, svc *enroll.Service, m *metrics.Metrics, log *slog.Logger) *Dispatcher {
	host, _ := os.Hostname()
	return &Dispatcher{Store: store, Enroll: svc, Metrics: m, Log: log, Poll: time.Second, BatchSize: 500, Lanes: 16,
		Holder: fmt.Sprintf("%s/%d/%d", host, os.Getpid(), time.Now().UnixNano()), wake: make(chan struct{}, 1)}
}

// Notify wakes the dispatcher after new events were stored.
func (d *Dispatcher) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run applies events until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) error {
	for {
		n, err := d.drainIfLeader(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			d.Log.WarnContext(ctx, "webhook inbox: will retry", "error", err)
		}
		if n > 0 && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
		case <-time.After(d.Poll):
		}
	}
}

func (d *Dispatcher) drainIfLeader(ctx context.Context) (int, error) {
	ok, err := d.Store.AcquireLease(ctx, "inbox", d.Holder, leaseTTL)
	if err != nil || !ok {
		return 0, err
	}
	return d.drain(ctx)
}

// drain applies a batch of pending events. Each friend's events go to one
// lane, in order; a lane stops at its first failure, so a friend's later
// events never overtake an earlier one that failed, and the next drain
// starts again from the failed one.
func (d *Dispatcher) drain(ctx context.Context) (int, error) {
	backlog, err := d.Store.WebhookBacklog(ctx)
	if err != nil {
		return 0, err
	}
	if d.Metrics != nil {
		d.Metrics.WebhookBacklog.Set(float64(backlog))
	}
	if backlog == 0 {
		return 0, nil
	}
	events, err := d.Store.PendingWebhookEvents(ctx, d.BatchSize)
	if err != nil {
		return 0, err
	}
	lanes := max(d.Lanes, 1)
	byLane := make([][]models.WebhookEvent, lanes)
	for _, ev := range events {
		h := fnv.New32a()
		h.Write([]byte(ev.UserID))
		k := int(h.Sum32() % uint32(lanes))
		byLane[k] = append(byLane[k], ev)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied int
		errs    []error
	)
	for _, lane := range byLane {
		if len(lane) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := d.applyInOrder(ctx, lane)
			mu.Lock()
			applied += n
			if err != nil {
				errs = append(errs, err)
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return applied, errors.Join(errs...)
}

func (d *Dispatcher) applyInOrder(ctx context.Context, events []models.WebhookEvent) (int, error) {
	for i, ev := range events {
		if err := d.apply(ctx, &ev); err != nil {
			if ctx.Err() == nil {
				_ = d.Store.MarkWebhookEventFailed(ctx, ev.ID, err)
			}
			return i, fmt.Errorf("event %s (%s): %w", ev.WebhookEventID, ev.Type, err)
		}
		if err := d.Store.MarkWebhookEventProcessed(ctx, ev.ID, time.Now()); err != nil {
			return i, err
		}
	}
	return len(events), nil
}

func (d *Dispatcher) apply(ctx context.Context, ev *models.WebhookEvent) error {
	if ev.UserID == "" {
		return nil
	}
	switch ev.Type {
	case TypeFollow:
		return d.Enroll.Follow(ctx, ev.ChannelID, ev.UserID, ev.Timestamp)
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
		return d.Enroll.ChatMessage(ctx, ev.ChannelID, ev.UserID, m.Message.Text, ev.Timestamp)
	case TypePostback:
		var p struct {
			Postback struct {
				Data string `json:"data"`
			} `json:"postback"`
		}
		if err := json.Unmarshal([]byte(ev.Payload), &p); err != nil {
			return err
		}
		return d.Enroll.Postback(ctx, ev.ChannelID, ev.UserID, p.Postback.Data, ev.Timestamp)
	}
	return nil
}
