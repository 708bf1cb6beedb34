package preview_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stepcast/stepcast/preview"
	"github.com/stepcast/stepcast/scenario"
)

var tokyo, _ = time.LoadLocation("Asia/Tokyo")

func doc(t *testing.T, src string) scenario.Document {
	t.Helper()
	d, err := scenario.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	return *d
}

const cartScenario = `
name: Cart
start: {type: follow}
nodes:
  - id: day1
    type: wait
    wait: {days: 1, at: "10:00"}
    next: hello
  - id: hello
    type: message
    message: {messages: [{type: text, text: "Hello {{displayName}}"}]}
    next: route
  - id: route
    type: branch
    branch:
      cases:
        - when: {route: [store-qr]}
          next: coupon
      default: wait-buy
  - id: coupon
    type: message
    message: {messages: [{type: text, text: "Store coupon"}]}
    next: wait-buy
  - id: wait-buy
    type: wait_event
    waitEvent:
      event: {type: purchase, props: [{key: amount, op: gte, value: "5000"}]}
      timeout: {after: 48h, from: previous}
      onEvent: survey
      onTimeout: reminder
  - id: reminder
    type: message
    message: {messages: [{type: text, text: "Your cart misses you"}]}
  - id: survey
    type: message
    message: {messages: [{type: text, text: "How was it?"}]}
`

func TestPreviewTimeline(t *testing.T) {
	start := time.Date(2026, 1, 30, 14, 0, 0, 0, tokyo)
	cases := []struct {
		name  string
		f     preview.Friend
		nodes []string
		times []time.Time
	}{
		{"from the store, buys on day 2", preview.Friend{DisplayName: "Aiko", Route: "store-qr",
			Events: []preview.Event{{Type: "purchase", Props: map[string]string{"amount": "8000"}, After: "30h"}}},
			[]string{"hello", "coupon", "survey"},
			[]time.Time{time.Date(2026, 1, 31, 10, 0, 0, 0, tokyo), time.Date(2026, 1, 31, 10, 0, 0, 0, tokyo), time.Date(2026, 1, 31, 20, 0, 0, 0, tokyo)}},
		{"no route, small purchase only", preview.Friend{
			Events: []preview.Event{{Type: "purchase", Props: map[string]string{"amount": "100"}, After: "30h"}}},
			[]string{"hello", "reminder"},
			[]time.Time{time.Date(2026, 1, 31, 10, 0, 0, 0, tokyo), time.Date(2026, 2, 2, 10, 0, 0, 0, tokyo)}},
		{"blocks before day 1", preview.Friend{Events: []preview.Event{{Type: "unfollow", After: "2h"}}}, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tl, err := preview.Run(preview.Input{Document: doc(t, cartScenario), ScenarioKey: "cart", Friend: c.f, Start: start})
			if err != nil {
				t.Fatal(err)
			}
			if len(tl.Sends) != len(c.nodes) {
				t.Fatalf("sends = %+v, want nodes %v", tl.Sends, c.nodes)
			}
			for i, s := range tl.Sends {
				if s.Node != c.nodes[i] || !s.At.Equal(c.times[i]) {
					t.Errorf("send %d = %s at %s, want %s at %s", i, s.Node, s.At.In(tokyo), c.nodes[i], c.times[i])
				}
			}
			if c.nodes == nil && tl.End.ExitReason != "blocked" {
				t.Errorf("end = %+v, want exit blocked", tl.End)
			}
		})
	}
}

func TestPreviewPersonalizes(t *testing.T) {
	tl, err := preview.Run(preview.Input{Document: doc(t, cartScenario), ScenarioKey: "cart",
		Friend: preview.Friend{DisplayName: `Ken "K"`}, Start: time.Date(2026, 3, 1, 9, 0, 0, 0, tokyo)})
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Text string }
	if err := json.Unmarshal(tl.Sends[0].Messages[0], &m); err != nil || m.Text != `Hello Ken "K"` {
		t.Fatalf("first message = %s (%v)", tl.Sends[0].Messages[0], err)
	}
}

func TestPreviewRefusesBadFriend(t *testing.T) {
	_, err := preview.Run(preview.Input{Document: doc(t, cartScenario), ScenarioKey: "cart",
		Friend: preview.Friend{Events: []preview.Event{{Type: "teleport", After: "1h"}}}})
	if err == nil {
		t.Fatal("an unknown event type was accepted")
	}
}
