package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stepcast/stepcast/internal/testenv"
)

var trackedLink = regexp.MustCompile(`http://[^/"]+/r/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+`)

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// A URL in a message becomes a tracked link; the click is recorded with its
// user agent, sets the OS attribute, and changes a later branch.
func TestTrackedLinkClickChangesBranch(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	const shop = "https://shop.example.com/sale?item=42&utm=line"
	s.publish(ch, "sale", map[string]any{"name": "Sale", "start": map[string]any{"type": "follow"},
		"nodes": []any{
			map[string]any{"id": "offer", "type": "message", "next": "wait", "message": map[string]any{"messages": []any{
				text("See the sale: " + shop),
				map[string]any{"type": "template", "altText": "Sale", "template": map[string]any{"type": "buttons", "text": "Sale",
					"actions": []any{map[string]any{"type": "uri", "label": "Open", "uri": shop}}}},
				map[string]any{"type": "image", "originalContentUrl": "https://shop.example.com/a.jpg", "previewImageUrl": "https://shop.example.com/a.jpg"},
			}}},
			waitNode("wait", "3s", "clicked?"),
			map[string]any{"id": "clicked?", "type": "branch", "branch": map[string]any{"cases": []any{
				map[string]any{"when": map[string]any{"event": map[string]any{"type": "click", "node": "offer"}}, "next": "thanks"}},
				"default": "nudge"}},
			msgNode("thanks", "Thanks for looking", ""),
			msgNode("nudge", "Did you see it?", ""),
		}})
	clicker, other := testenv.UserID(), testenv.UserID()
	s.event(ch, "follow", clicker)
	s.event(ch, "follow", other)
	waitFor(t, 20*time.Second, "the offers", func() bool { return len(s.line.PushesTo(clicker)) == 1 && len(s.line.PushesTo(other)) == 1 })

	msgs := s.line.PushesTo(clicker)[0].Messages
	all := string(msgs[0]) + string(msgs[1])
	if strings.Contains(all, "shop.example.com/sale") {
		t.Fatalf("the sale URL was not replaced by a tracked link: %s", all)
	}
	if !strings.Contains(string(msgs[2]), "https://shop.example.com/a.jpg") {
		t.Fatalf("an image URL was rewritten: %s", msgs[2])
	}
	link := trackedLink.FindString(string(msgs[1]))
	if link == "" || trackedLink.FindString(string(msgs[0])) == "" {
		t.Fatalf("no tracked link in %s", all)
	}
	req, _ := http.NewRequest("GET", link, nil)
	req.Header.Set("User-Agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Line/13.0")
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != shop {
		t.Fatalf("click answered %d to %q, want 302 to %s", res.StatusCode, res.Header.Get("Location"), shop)
	}
	waitFor(t, 20*time.Second, "the follow-ups", func() bool { return len(s.line.PushesTo(clicker)) == 2 && len(s.line.PushesTo(other)) == 2 })
	if got := pushTexts(s.line.PushesTo(clicker)); got[len(got)-1] != "text:Thanks for looking" {
		t.Errorf("clicker got %q", got)
	}
	if got := pushTexts(s.line.PushesTo(other)); got[len(got)-1] != "text:Did you see it?" {
		t.Errorf("other got %q", got)
	}
	var f struct{ Attributes map[string]string }
	s.mustDo("GET", fmt.Sprintf("/api/v1/channels/%d/friends/%s", ch, clicker), nil, &f)
	if f.Attributes["os"] != "iOS" {
		t.Errorf("os attribute = %q, want iOS from the click's user agent", f.Attributes["os"])
	}

	// A tampered token is refused and redirects nowhere.
	tampered := link[:len(link)-3] + "AAA"
	if tampered == link {
		tampered = link[:len(link)-3] + "BBB"
	}
	res, err = noRedirect.Get(tampered)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || res.Header.Get("Location") != "" {
		t.Fatalf("tampered token answered %d, location %q", res.StatusCode, res.Header.Get("Location"))
	}
}

// Web events from the shop's site, authenticated by the channel's key.
func TestWebEvents(t *testing.T) {
	s := startSystem(t)
	var created struct {
		ID        uint
		EventsKey string
	}
	s.mustDo("POST", "/api/v1/channels", map[string]any{"name": "Shop", "lineChannelId": randomHex(5),
		"channelSecret": testSecret, "accessToken": "e2e-token"}, &created)
	ch := created.ID
	s.publish(ch, "cart", map[string]any{"name": "Cart", "start": map[string]any{"type": "follow"},
		"nodes": []any{
			map[string]any{"id": "buy?", "type": "wait_event", "waitEvent": map[string]any{
				"event":   map[string]any{"type": "purchase", "props": []any{map[string]any{"key": "amount", "op": "gte", "value": "3000"}}},
				"timeout": map[string]any{"after": "1h"}, "onEvent": "thanks"}},
			msgNode("thanks", "Thank you for your order", ""),
		}})
	user := testenv.UserID()
	s.event(ch, "follow", user)
	waitFor(t, 10*time.Second, "the enrollment", func() bool { return len(s.enrollments(ch)) == 1 })

	var recorded struct{ ID uint } // the id of the last event recorded
	post := func(key string, body any) (int, errorJSON) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", fmt.Sprintf("%s/events/%d", s.url, ch), bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("X-Stepcast-Key", key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		var e errorJSON
		_ = json.Unmarshal(raw, &e)
		recorded.ID = 0
		_ = json.Unmarshal(raw, &recorded)
		return res.StatusCode, e
	}
	purchase := map[string]any{"userId": user, "type": "purchase", "props": map[string]any{"amount": "4800", "product": "tea"}}
	for name, c := range map[string]struct {
		key    string
		body   any
		status int
	}{
		"no key":         {"", purchase, 401},
		"wrong key":      {"sk_wrong", purchase, 401},
		"unknown type":   {created.EventsKey, map[string]any{"userId": user, "type": "teleport"}, 400},
		"bad user ID":    {created.EventsKey, map[string]any{"userId": "bob", "type": "page_view"}, 400},
		"unknown friend": {created.EventsKey, map[string]any{"userId": testenv.UserID(), "type": "page_view"}, 404},
		"custom no name": {created.EventsKey, map[string]any{"userId": user, "type": "custom"}, 400},
		"ID too long":    {created.EventsKey, map[string]any{"id": strings.Repeat("x", 129), "userId": user, "type": "page_view"}, 400},
	} {
		if code, e := post(c.key, c.body); code != c.status {
			t.Errorf("%s: %d %+v, want %d", name, code, e, c.status)
		}
	}
	if len(s.line.PushesTo(user)) != 0 {
		t.Fatal("a refused event moved the enrollment")
	}
	// The shop's own event ID makes a retried report safe: the same ID
	// again is the same event, answered 200 with its id.
	purchase["id"] = "order-1001"
	if code, e := post(created.EventsKey, purchase); code != http.StatusCreated {
		t.Fatalf("purchase: %d %+v", code, e)
	}
	id := recorded.ID
	if code, e := post(created.EventsKey, purchase); code != http.StatusOK || recorded.ID != id {
		t.Fatalf("the purchase reported again: %d %+v, event %d; want 200 and event %d", code, e, recorded.ID, id)
	}
	if code, e := post(created.EventsKey, map[string]any{"id": "order-1001", "userId": user, "type": "page_view"}); code != http.StatusConflict {
		t.Fatalf("another event with the purchase's ID: %d %+v, want 409", code, e)
	}
	delete(purchase, "id")
	waitFor(t, 20*time.Second, "the thanks", func() bool { return len(s.line.PushesTo(user)) == 1 })

	// A browser's preflight is answered.
	req, _ := http.NewRequest("OPTIONS", fmt.Sprintf("%s/events/%d", s.url, ch), nil)
	req.Header.Set("Origin", "https://shop.example.com")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("preflight answered %d %v", res.StatusCode, res.Header)
	}

	// Rotating the key retires the old one.
	var rotated struct{ EventsKey string }
	s.mustDo("POST", fmt.Sprintf("/api/v1/channels/%d/events-key", ch), nil, &rotated)
	if code, _ := post(created.EventsKey, purchase); code != 401 {
		t.Fatalf("old key after rotation answered %d", code)
	}
	if code, _ := post(rotated.EventsKey, purchase); code != http.StatusCreated {
		t.Fatalf("new key answered %d", code)
	}
}

// Keyword rules tag friends from their chat messages; postbacks are events.
func TestKeywordRulesAndPostbacks(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	s.mustDo("POST", fmt.Sprintf("/api/v1/channels/%d/keyword-rules", ch), map[string]any{"keyword": "coupon", "tag": "wants-coupon"}, nil)
	s.mustDo("POST", fmt.Sprintf("/api/v1/channels/%d/keyword-rules", ch), map[string]any{"keyword": "STOP", "exact": true, "tag": "stop"}, nil)
	s.publish(ch, "pb", map[string]any{"name": "PB", "start": map[string]any{"type": "follow"},
		"nodes": []any{
			map[string]any{"id": "answer?", "type": "wait_event", "waitEvent": map[string]any{
				"event": map[string]any{"type": "postback", "name": "survey=yes"}, "timeout": map[string]any{"after": "1h"}, "onEvent": "thanks"}},
			msgNode("thanks", "Thanks for answering", ""),
		}})
	user := testenv.UserID()
	s.event(ch, "follow", user)
	waitFor(t, 10*time.Second, "the enrollment", func() bool { return len(s.enrollments(ch)) == 1 })

	send := func(ev map[string]any) {
		ev["mode"], ev["timestamp"] = "active", time.Now().UnixMilli()
		ev["source"] = map[string]any{"type": "user", "userId": user}
		ev["webhookEventId"] = "01" + randomHex(12)
		ev["deliveryContext"] = map[string]any{"isRedelivery": false}
		body, _ := json.Marshal(map[string]any{"destination": "U" + randomHex(16), "events": []any{ev}})
		if code := s.webhook(ch, body); code != http.StatusOK {
			t.Fatalf("webhook answered %d", code)
		}
	}
	send(map[string]any{"type": "message", "replyToken": randomHex(16), "message": map[string]any{"type": "text", "id": "1", "text": "Is there a Coupon today?", "quoteToken": "q"}})
	send(map[string]any{"type": "message", "replyToken": randomHex(16), "message": map[string]any{"type": "text", "id": "2", "text": "please stop", "quoteToken": "q"}})
	var f struct{ Tags []string }
	waitFor(t, 10*time.Second, "the keyword tag", func() bool {
		s.mustDo("GET", fmt.Sprintf("/api/v1/channels/%d/friends/%s", ch, user), nil, &f)
		return len(f.Tags) == 1
	})
	if fmt.Sprint(f.Tags) != "[wants-coupon]" {
		t.Fatalf("tags = %v, want [wants-coupon] (STOP is exact)", f.Tags)
	}
	send(map[string]any{"type": "postback", "replyToken": randomHex(16), "postback": map[string]any{"data": "survey=no"}})
	send(map[string]any{"type": "postback", "replyToken": randomHex(16), "postback": map[string]any{"data": "survey=yes"}})
	waitFor(t, 20*time.Second, "the thanks", func() bool { return len(s.line.PushesTo(user)) == 1 })
}

// A route set shortly after the follow still counts for the start
// condition, and the days count from the follow.
func TestRouteArrivingAfterFollow(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	s.publish(ch, "store", map[string]any{"name": "Store", "start": map[string]any{"type": "follow", "routes": []any{"store-qr"}},
		"nodes": []any{msgNode("hello", "Welcome, store visitor", "")}})
	user, web := testenv.UserID(), testenv.UserID()
	s.event(ch, "follow", user)
	s.event(ch, "follow", web)
	waitFor(t, 10*time.Second, "two friends", func() bool {
		var l struct{ Items []any }
		s.mustDo("GET", fmt.Sprintf("/api/v1/channels/%d/friends", ch), nil, &l)
		return len(l.Items) == 2
	})
	if len(s.enrollments(ch)) != 0 {
		t.Fatal("friends without a route were enrolled in a route-only scenario")
	}
	s.mustDo("PUT", fmt.Sprintf("/api/v1/channels/%d/friends/%s/route", ch, user), map[string]any{"route": "store-qr"}, nil)
	s.mustDo("PUT", fmt.Sprintf("/api/v1/channels/%d/friends/%s/route", ch, web), map[string]any{"route": "web-ad"}, nil)
	waitFor(t, 20*time.Second, "the welcome", func() bool { return len(s.line.PushesTo(user)) == 1 })
	time.Sleep(time.Second)
	if len(s.line.PushesTo(web)) != 0 || len(s.enrollments(ch)) != 1 {
		t.Fatal("a friend from another route was enrolled")
	}
}
