package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stepcast/stepcast/fakeline"
	"github.com/stepcast/stepcast/internal/testenv"
)

type errorJSON struct {
	Error struct {
		Code     string
		Message  string
		Problems []struct{ Path, Message string }
	}
}

func withMaxWebhookBytes(n int) sysOpt {
	return func(env map[string]string) { env["STEPCAST_MAX_WEBHOOK_BYTES"] = fmt.Sprint(n) }
}

// Bad webhooks get a 4xx that names the problem, and nothing is stored,
// enrolled or sent.
func TestWebhookBadInput(t *testing.T) {
	s := startSystem(t, withMaxWebhookBytes(8<<10))
	ch := s.createChannel()
	s.publish(ch, "welcome", twoSteps(time.Second))
	user := testenv.UserID()
	good := fakeline.WebhookBody("follow", user, time.Now())
	noID, _ := json.Marshal(map[string]any{"events": []any{map[string]any{"type": "follow", "timestamp": 1,
		"source": map[string]any{"type": "user", "userId": user}}}})
	huge := append([]byte(`{"events":[],"padding":"`), bytes.Repeat([]byte("x"), 9<<10)...)
	huge = append(huge, `"}`...)

	cases := []struct {
		name      string
		channel   string
		body      []byte
		signature string
		status    int
		message   string
	}{
		{"unknown channel", "999999", good, fakeline.Sign(testSecret, good), 404, "channel 999999 not found"},
		{"channel not a number", "abc", good, fakeline.Sign(testSecret, good), 404, "not found"},
		{"missing signature", fmt.Sprint(ch), good, "", 401, "missing x-line-signature"},
		{"wrong signature", fmt.Sprint(ch), good, fakeline.Sign("other-secret", good), 401, "does not match"},
		{"signature of another body", fmt.Sprint(ch), good, fakeline.Sign(testSecret, []byte("{}")), 401, "does not match"},
		{"malformed JSON", fmt.Sprint(ch), []byte(`{"events":[`), fakeline.Sign(testSecret, []byte(`{"events":[`)), 400, "not valid JSON"},
		{"event without webhookEventId", fmt.Sprint(ch), noID, fakeline.Sign(testSecret, noID), 400, "webhookEventId"},
		{"oversized body", fmt.Sprint(ch), huge, fakeline.Sign(testSecret, huge), 413, "over 8192 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", s.url+"/webhooks/line/"+c.channel, bytes.NewReader(c.body))
			if c.signature != "" {
				req.Header.Set("X-Line-Signature", c.signature)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var e errorJSON
			_ = json.NewDecoder(res.Body).Decode(&e)
			if res.StatusCode != c.status || !strings.Contains(e.Error.Message, c.message) {
				t.Fatalf("%d %q, want %d and a message with %q", res.StatusCode, e.Error.Message, c.status, c.message)
			}
		})
	}
	time.Sleep(3 * time.Second) // past the first step, had anything been enrolled
	var friends struct{ Items []any }
	s.mustDo("GET", fmt.Sprintf("/api/v1/channels/%d/friends", ch), nil, &friends)
	if len(friends.Items) != 0 || len(s.enrollments(ch)) != 0 || len(s.line.Pushes()) != 0 {
		t.Fatalf("bad webhooks changed something: %d friends, %d enrollments, %d pushes",
			len(friends.Items), len(s.enrollments(ch)), len(s.line.Pushes()))
	}

	// The good body, after all that, still works.
	if code := s.webhook(ch, good); code != http.StatusOK {
		t.Fatalf("good webhook answered %d", code)
	}
	waitFor(t, 20*time.Second, "the enrollment", func() bool { return len(s.enrollments(ch)) == 1 })
}

// A scenario that cannot run is refused at save time with every problem,
// and nothing is stored.
func TestScenarioBadInput(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	path := fmt.Sprintf("/api/v1/channels/%d/scenarios", ch)
	bad := map[string]any{
		"name":     "Broken",
		"timezone": "Mars/Olympus",
		"start":    map[string]any{"type": "follow"},
		"nodes": []any{
			map[string]any{"id": "a", "type": "wait", "wait": map[string]any{"days": 1, "at": "25:00"}, "next": "b"},
			map[string]any{"id": "b", "type": "message", "message": map[string]any{"messages": []any{text("1"), text("2"), text("3"), text("4"), text("5"), text("6")}}, "next": "missing"},
			map[string]any{"id": "orphan", "type": "exit"},
		},
	}
	var e errorJSON
	if code := s.do("POST", path, map[string]any{"key": "broken", "document": bad}, &e); code != 400 {
		t.Fatalf("invalid scenario answered %d, want 400", code)
	}
	wantPaths := []string{"timezone", "nodes[0].wait.at", "nodes[1].message.messages", "nodes[1].next", "nodes[2]"}
	got := map[string]bool{}
	for _, p := range e.Error.Problems {
		got[p.Path] = true
	}
	for _, p := range wantPaths {
		if !got[p] {
			t.Errorf("problem at %s not reported; got %+v", p, e.Error.Problems)
		}
	}

	for name, c := range map[string]struct {
		body    string
		status  int
		message string
	}{
		"malformed JSON":  {`{"key":`, 400, "not valid JSON"},
		"unknown field":   {`{"key":"x","document":{},"extra":1}`, 400, "unknown field"},
		"bad key":         {`{"key":"Has Spaces","document":{"name":"x"}}`, 400, "scenario is not valid"},
		"no document":     {`{"key":"x"}`, 400, "scenario is not valid"},
		"unknown doc key": {`{"key":"x","document":{"name":"x","start":{"type":"follow"},"nodes":[],"typo":1}}`, 400, "typo"},
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", s.url+path, strings.NewReader(c.body))
			req.Header.Set("Authorization", "Bearer "+testAdminToken)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var e errorJSON
			_ = json.NewDecoder(res.Body).Decode(&e)
			if res.StatusCode != c.status || !strings.Contains(e.Error.Message, c.message) {
				t.Fatalf("%d %q, want %d with %q", res.StatusCode, e.Error.Message, c.status, c.message)
			}
		})
	}
	var list struct{ Items []any }
	s.mustDo("GET", path, nil, &list)
	if len(list.Items) != 0 {
		t.Fatalf("%d scenarios stored after refused requests", len(list.Items))
	}

	// A duplicate key and a duplicate channel are conflicts.
	s.publish(ch, "dup", twoSteps(time.Second))
	if code := s.do("POST", path, map[string]any{"key": "dup", "document": twoSteps(time.Second)}, &e); code != 409 {
		t.Fatalf("duplicate scenario key answered %d, want 409", code)
	}
	if code := s.do("POST", "/api/v1/scenarios/999999/publish", nil, &e); code != 404 || !strings.Contains(e.Error.Message, "scenario 999999 not found") {
		t.Fatalf("publishing a missing scenario answered %d %q", code, e.Error.Message)
	}
	if code := s.do("POST", "/api/v1/channels", map[string]any{"name": "x"}, &e); code != 400 || len(e.Error.Problems) != 3 {
		t.Fatalf("incomplete channel answered %d with problems %+v, want 400 and 3", code, e.Error.Problems)
	}
}
