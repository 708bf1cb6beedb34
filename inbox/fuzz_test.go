package inbox_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/inbox"
)

// FuzzDecode feeds arbitrary webhook bodies to Decode. The seed corpus is in
// testdata/fuzz/FuzzDecode (real LINE bodies, malformed and odd ones) plus
// the f.Add seeds below; a plain `go test` runs every seed.
//
// Properties:
//   - Decode never panics;
//   - on success there is one row per element of "events", each with a
//     non-empty Type and WebhookEventID, the ChannelID given, the raw event
//     as its payload and the receive time given;
//   - the type and webhookEventId stored are the event's own (its exact
//     JSON keys, as LINE and the SDK read them);
//   - every string of a row can be stored in PostgreSQL text (no NUL, valid
//     UTF-8);
//   - on failure the error is a *stepcast.Error with code EINVALID.
func FuzzDecode(f *testing.F) {
	f.Add(uint(1), []byte(`{"destination":"U0","events":[]}`), int64(1767225600000))
	f.Add(uint(7), []byte(`{"destination":"Uxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","events":[{"type":"follow","mode":"active","timestamp":1462629479859,"source":{"type":"user","userId":"U4af4980629"},"webhookEventId":"01FZ74A0TDDPYRVKNK77XKC3ZR","deliveryContext":{"isRedelivery":false},"replyToken":"nHuyWiB7yP5Zw52FIkcQobQuGDXCTA","follow":{"isUnblocked":false}}]}`), int64(0))
	f.Add(uint(0), []byte(`{"events":[{"type":"unfollow","webhookEventId":"01G","timestamp":1,"source":{"type":"user","userId":"U1"},"mode":"active","deliveryContext":{"isRedelivery":true}}]}`), int64(-1))
	f.Add(uint(3), []byte(`{"events":[{"type":"x","webhookEventId":""}]}`), int64(42))
	f.Add(uint(3), []byte(`{"events":[{"type":"message","webhookEventId":"a","Type":"follow"}]}`), int64(42))
	f.Add(uint(3), []byte(`not json`), int64(42))
	f.Add(uint(1<<63), []byte(``), int64(1<<62))

	f.Fuzz(func(t *testing.T, channelID uint, body []byte, nowMillis int64) {
		now := time.UnixMilli(nowMillis)
		events, err := inbox.Decode(channelID, body, now)
		if err != nil {
			e, ok := err.(*stepcast.Error)
			if !ok {
				t.Fatalf("error %v (%T) is not a *stepcast.Error", err, err)
			}
			if e.Code != stepcast.EINVALID {
				t.Fatalf("error %v has code %q, want %q", err, e.Code, stepcast.EINVALID)
			}
			if events != nil {
				t.Fatalf("error %v with %d events", err, len(events))
			}
			return
		}

		var req struct {
			Events []json.RawMessage `json:"events"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			t.Fatalf("Decode accepted a body that is not JSON: %v", err)
		}
		if len(events) != len(req.Events) {
			t.Fatalf("%d events decoded from %d in the body", len(events), len(req.Events))
		}
		for i, ev := range events {
			// The row must be storable as it is: PostgreSQL text takes
			// neither NUL nor invalid UTF-8, and a row that cannot be
			// stored makes the webhook answer 5xx, so LINE redelivers it
			// for ever.
			for name, s := range map[string]string{"type": ev.Type, "webhookEventId": ev.WebhookEventID,
				"userId": ev.UserID, "payload": ev.Payload} {
				if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
					fuzzKnownBug(t, "Decode accepts events[%d].%s %q, which PostgreSQL cannot store (NUL or invalid UTF-8)", i, name, s)
					t.Fatalf("events[%d].%s %q has NUL or invalid UTF-8", i, name, s)
				}
			}
			if ev.Type == "" || ev.WebhookEventID == "" {
				t.Fatalf("events[%d] has type %q and webhookEventId %q", i, ev.Type, ev.WebhookEventID)
			}
			if ev.ChannelID != channelID {
				t.Fatalf("events[%d] has channel %d, want %d", i, ev.ChannelID, channelID)
			}
			if !ev.ReceivedAt.Equal(now) || ev.ReceivedAt.Location() != time.UTC {
				t.Fatalf("events[%d] received at %v, want %v in UTC", i, ev.ReceivedAt, now)
			}
			if ev.Payload != string(req.Events[i]) || !json.Valid([]byte(ev.Payload)) {
				t.Fatalf("events[%d] payload %q is not the event %q", i, ev.Payload, req.Events[i])
			}
			if ev.ID != 0 || ev.ProcessedAt != nil || ev.Attempts != 0 || ev.LastError != "" {
				t.Fatalf("events[%d] is not a fresh inbox row: %+v", i, ev)
			}
			// What the event says by its exact keys, as LINE means them and
			// as the SDK's model (which Decode uses to check the shape) reads
			// them. encoding/json matches struct fields case-insensitively,
			// so "Type" or "TYPE" must not stand in for "type".
			var exact map[string]json.RawMessage
			if err := json.Unmarshal(req.Events[i], &exact); err != nil {
				t.Fatalf("events[%d] accepted but is not an object: %v", i, err)
			}
			var typ, id string
			_ = json.Unmarshal(exact["type"], &typ)
			_ = json.Unmarshal(exact["webhookEventId"], &id)
			if ev.Type != typ || ev.WebhookEventID != id {
				fuzzKnownBug(t, "Decode reads type and webhookEventId case-insensitively; "+
					"events[%d] stored as type %q, webhookEventId %q; the event's own are %q, %q",
					i, ev.Type, ev.WebhookEventID, typ, id)
				t.Fatalf("events[%d] stored as type %q, webhookEventId %q; the event's own are %q, %q",
					i, ev.Type, ev.WebhookEventID, typ, id)
			}
		}
	})
}

// fuzzKnownBug fails on an input that showed a bug, now fixed: the input
// stays in the corpus as a guard against its return.
func fuzzKnownBug(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Fatalf("regression of a fixed bug: "+format, args...)
}
