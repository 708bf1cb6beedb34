package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stepcast/stepcast/internal/testenv"
)

func msgNode(id, body, next string) map[string]any {
	n := map[string]any{"id": id, "type": "message", "message": map[string]any{"messages": []any{text(body)}}}
	if next != "" {
		n["next"] = next
	}
	return n
}

func waitNode(id, after, next string) map[string]any {
	return map[string]any{"id": id, "type": "wait", "wait": map[string]any{"after": after, "from": "previous"}, "next": next}
}

// Pause holds running enrollments before their next send, across its due
// time; resume sends what was held, once.
func TestPauseHoldsAndResumeDelivers(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	id := s.publish(ch, "welcome", map[string]any{"name": "W", "start": map[string]any{"type": "follow"},
		"nodes": []any{msgNode("first", "one", "wait"), waitNode("wait", "2s", "second"), msgNode("second", "two", "")}})
	user := testenv.UserID()
	s.event(ch, "follow", user)
	waitFor(t, 20*time.Second, "the first push", func() bool { return len(s.line.PushesTo(user)) == 1 })
	s.mustDo("POST", fmt.Sprintf("/api/v1/scenarios/%d/pause", id), nil, nil)

	// A friend who follows while paused is not enrolled.
	other := testenv.UserID()
	s.event(ch, "follow", other)

	time.Sleep(4 * time.Second) // past the second step's due time
	if n := len(s.line.PushesTo(user)); n != 1 {
		t.Fatalf("%d pushes while paused, want 1", n)
	}
	var e EnrollmentStateJSON
	s.mustDo("GET", fmt.Sprintf("/api/v1/channels/%d/enrollments/%d", ch, s.enrollments(ch)[0].ID), nil, &e)
	if e.State == nil || e.State.Status != "held" || e.State.Node != "second" {
		t.Fatalf("state while paused = %+v, want held at second", e.State)
	}
	s.mustDo("POST", fmt.Sprintf("/api/v1/scenarios/%d/resume", id), nil, nil)
	waitFor(t, 20*time.Second, "the held push", func() bool { return len(s.line.PushesTo(user)) == 2 })
	time.Sleep(time.Second)
	if n := len(s.line.PushesTo(user)); n != 2 {
		t.Fatalf("%d pushes after resume, want 2", n)
	}
	if n := len(s.line.PushesTo(other)); n != 0 {
		t.Fatalf("friend who followed while paused got %d pushes", n)
	}
	for _, e := range s.enrollments(ch) {
		if e.FriendID != 0 && e.Status == "running" {
			waitFor(t, 10*time.Second, "completion", func() bool { return s.enrollments(ch)[0].Status == "completed" })
		}
	}

	// Illegal transitions are conflicts.
	var eb errorJSON
	if code := s.do("POST", fmt.Sprintf("/api/v1/scenarios/%d/resume", id), nil, &eb); code != http.StatusConflict {
		t.Fatalf("resuming an active scenario answered %d", code)
	}
}

type EnrollmentStateJSON struct {
	Status string
	State  *struct {
		Status, Node string
		Path         []struct{ Node, Outcome string }
	}
}

// End stops every running enrollment at once.
func TestEndStopsEnrollments(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	id := s.publish(ch, "welcome", map[string]any{"name": "W", "start": map[string]any{"type": "follow"},
		"nodes": []any{msgNode("first", "one", "wait"), waitNode("wait", "1h", "second"), msgNode("second", "two", "")}})
	user := testenv.UserID()
	s.event(ch, "follow", user)
	waitFor(t, 20*time.Second, "the first push", func() bool { return len(s.line.PushesTo(user)) == 1 })
	s.mustDo("POST", fmt.Sprintf("/api/v1/scenarios/%d/end", id), nil, nil)
	waitFor(t, 20*time.Second, "the enrollment to end", func() bool {
		es := s.enrollments(ch)
		return es[0].Status == "exited" && es[0].ExitReason == "scenario ended"
	})
	var eb errorJSON
	if code := s.do("POST", fmt.Sprintf("/api/v1/scenarios/%d/publish", id), nil, &eb); code != http.StatusConflict {
		t.Fatalf("publishing an ended scenario answered %d", code)
	}
}

// Publishing a new version affects new enrollments only.
func TestNewVersionOnlyForNewEnrollments(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	v1 := map[string]any{"name": "W", "start": map[string]any{"type": "follow"},
		"nodes": []any{waitNode("wait", "3s", "hello"), msgNode("hello", "version one", "")}}
	id := s.publish(ch, "welcome", v1)
	early := testenv.UserID()
	s.event(ch, "follow", early)
	waitFor(t, 20*time.Second, "the first enrollment", func() bool { return len(s.enrollments(ch)) == 1 })

	v2 := map[string]any{"name": "W", "start": map[string]any{"type": "follow"},
		"nodes": []any{waitNode("wait", "1s", "hello"), msgNode("hello", "version two", "")}}
	s.mustDo("PUT", fmt.Sprintf("/api/v1/scenarios/%d", id), map[string]any{"document": v2}, nil)
	s.mustDo("POST", fmt.Sprintf("/api/v1/scenarios/%d/publish", id), nil, nil)
	late := testenv.UserID()
	s.event(ch, "follow", late)

	waitFor(t, 20*time.Second, "both pushes", func() bool {
		return len(s.line.PushesTo(early)) == 1 && len(s.line.PushesTo(late)) == 1
	})
	if got := pushTexts(s.line.PushesTo(early)); got[0] != "text:version one" {
		t.Errorf("early friend got %q, want version one", got)
	}
	if got := pushTexts(s.line.PushesTo(late)); got[0] != "text:version two" {
		t.Errorf("late friend got %q, want version two", got)
	}
	var versions struct{ Items []struct{ Version int } }
	s.mustDo("GET", fmt.Sprintf("/api/v1/scenarios/%d/versions", id), nil, &versions)
	if len(versions.Items) != 2 || versions.Items[0].Version != 2 {
		t.Fatalf("versions = %+v", versions.Items)
	}
}

// A branch reads data changed after enrollment; a tag node writes tags;
// an event through the API ends a wait for event.
func TestBranchTagsAndEvents(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	var eb errorJSON
	cart := map[string]any{"name": "Cart", "start": map[string]any{"type": "follow"},
		"exit": map[string]any{"events": []any{map[string]any{"type": "custom", "name": "unsubscribe"}}},
		"nodes": []any{
			waitNode("wait", "2s", "vip?"),
			map[string]any{"id": "vip?", "type": "branch", "branch": map[string]any{
				"cases": []any{map[string]any{"when": map[string]any{"all": []any{
					map[string]any{"attribute": map[string]any{"key": "age", "op": "between", "min": 20, "max": 29}},
					map[string]any{"tag": "vip"}}}, "next": "vip"}},
				"default": "normal"}},
			msgNode("vip", "VIP offer", "mark"),
			msgNode("normal", "Normal offer", "mark"),
			map[string]any{"id": "mark", "type": "tag", "tag": map[string]any{"add": []any{"offered"}, "remove": []any{"vip"}}, "next": "buy?"},
			map[string]any{"id": "buy?", "type": "wait_event", "waitEvent": map[string]any{
				"event":   map[string]any{"type": "purchase", "props": []any{map[string]any{"key": "amount", "op": "gte", "value": "5000"}}},
				"timeout": map[string]any{"after": "1h"}, "onEvent": "thanks", "onTimeout": "remind"}},
			msgNode("thanks", "Thanks for buying", ""),
			msgNode("remind", "Your cart", ""),
		}}
	// The branch names a tag the channel does not know yet: a typo, until
	// the tag is defined.
	if code := s.do("POST", fmt.Sprintf("/api/v1/channels/%d/scenarios", ch), map[string]any{"key": "cart", "document": cart}, &eb); code != 400 ||
		eb.Error.Problems[0].Path != "nodes[1].branch.cases[0].when.all[1].tag" {
		t.Fatalf("unknown tag: %d %+v", code, eb.Error)
	}
	s.mustDo("POST", fmt.Sprintf("/api/v1/channels/%d/tags", ch), map[string]any{"tags": []any{"vip"}}, nil)
	s.publish(ch, "cart", cart)
	vip, plain := testenv.UserID(), testenv.UserID()
	s.event(ch, "follow", vip)
	s.event(ch, "follow", plain)
	waitFor(t, 10*time.Second, "two friends", func() bool { return len(s.enrollments(ch)) == 2 })
	// Set after enrollment, before the branch: the branch sees it.
	s.mustDo("PATCH", fmt.Sprintf("/api/v1/channels/%d/friends/%s/attributes", ch, vip), map[string]any{"age": "24"}, nil)
	s.mustDo("POST", fmt.Sprintf("/api/v1/channels/%d/friends/%s/tags", ch, vip), map[string]any{"add": []any{"vip"}}, nil)
	waitFor(t, 20*time.Second, "offers", func() bool { return len(s.line.PushesTo(vip)) == 1 && len(s.line.PushesTo(plain)) == 1 })
	if got := pushTexts(s.line.PushesTo(vip)); got[0] != "text:VIP offer" {
		t.Errorf("vip got %q", got)
	}
	if got := pushTexts(s.line.PushesTo(plain)); got[0] != "text:Normal offer" {
		t.Errorf("plain friend got %q", got)
	}
	var f struct{ Tags []string }
	waitFor(t, 10*time.Second, "the tag node", func() bool {
		s.mustDo("GET", fmt.Sprintf("/api/v1/channels/%d/friends/%s", ch, vip), nil, &f)
		return fmt.Sprint(f.Tags) == "[offered]"
	})

	// A small purchase does not match; a big one does.
	s.mustDo("POST", fmt.Sprintf("/api/v1/channels/%d/events", ch), map[string]any{"userId": vip, "type": "purchase", "props": map[string]any{"amount": "100"}}, nil)
	s.mustDo("POST", fmt.Sprintf("/api/v1/channels/%d/events", ch), map[string]any{"userId": vip, "type": "purchase", "props": map[string]any{"amount": "9800"}}, nil)
	waitFor(t, 20*time.Second, "the thanks", func() bool { return len(s.line.PushesTo(vip)) == 2 })
	if got := pushTexts(s.line.PushesTo(vip)); got[1] != "text:Thanks for buying" {
		t.Errorf("vip got %q", got)
	}
	// The exit event ends the other enrollment during its wait.
	s.mustDo("POST", fmt.Sprintf("/api/v1/channels/%d/events", ch), map[string]any{"userId": plain, "type": "custom", "name": "unsubscribe"}, nil)
	waitFor(t, 20*time.Second, "the exit", func() bool {
		for _, e := range s.enrollments(ch) {
			if e.Status == "exited" && e.ExitReason == "exit event" {
				return true
			}
		}
		return false
	})
	if code := s.do("POST", fmt.Sprintf("/api/v1/channels/%d/events", ch), map[string]any{"userId": plain, "type": "teleport"}, &eb); code != 400 {
		t.Fatalf("unknown event type answered %d", code)
	}
}

// Preview and test send through the API.
func TestPreviewAndTestSend(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	id := s.publish(ch, "welcome", twoSteps(2*time.Second))
	var tl struct {
		Sends []struct {
			Node string
			At   time.Time
		}
	}
	start := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	s.mustDo("POST", fmt.Sprintf("/api/v1/scenarios/%d/preview", id), map[string]any{"start": start, "friend": map[string]any{"displayName": "Yui"}}, &tl)
	if len(tl.Sends) != 2 || tl.Sends[0].Node != "welcome" || !tl.Sends[1].At.Equal(start.Add(3*time.Second)) {
		t.Fatalf("preview = %+v", tl.Sends)
	}
	if len(s.line.Pushes()) != 0 {
		t.Fatal("preview sent something")
	}
	user := testenv.UserID()
	s.line.SetProfile(user, "Yui")
	s.event(ch, "follow", user)
	waitFor(t, 10*time.Second, "the friend", func() bool { return len(s.enrollments(ch)) == 1 })
	s.mustDo("POST", fmt.Sprintf("/api/v1/scenarios/%d/test-send", id), map[string]any{"node": "coupon", "userId": user}, nil)
	if got := pushTexts(s.line.PushesTo(user)); len(got) == 0 || got[0] != "text:Your coupon: STEP10" {
		t.Fatalf("test send pushed %q", got)
	}
	var eb errorJSON
	if code := s.do("POST", fmt.Sprintf("/api/v1/scenarios/%d/test-send", id), map[string]any{"node": "wait-1", "userId": user}, &eb); code != 400 {
		t.Fatalf("test send of a wait node answered %d", code)
	}
}

// Enrolling by hand respects the re-entry rule.
func TestManualEnrollment(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	id := s.publish(ch, "manual", map[string]any{"name": "M", "start": map[string]any{"type": "manual"},
		"nodes": []any{msgNode("hello", "by hand", "")}})
	user := testenv.UserID()
	s.event(ch, "follow", user)
	waitFor(t, 10*time.Second, "the friend", func() bool {
		var l struct{ Items []any }
		s.mustDo("GET", fmt.Sprintf("/api/v1/channels/%d/friends", ch), nil, &l)
		return len(l.Items) == 1
	})
	if len(s.enrollments(ch)) != 0 {
		t.Fatal("a manual scenario enrolled on follow")
	}
	path := fmt.Sprintf("/api/v1/channels/%d/friends/%s/enrollments", ch, user)
	s.mustDo("POST", path, map[string]any{"scenarioId": id}, nil)
	waitFor(t, 20*time.Second, "the push", func() bool { return len(s.line.PushesTo(user)) == 1 })
	waitFor(t, 10*time.Second, "completion", func() bool { return s.enrollments(ch)[0].Status == "completed" })
	var eb errorJSON
	if code := s.do("POST", path, map[string]any{"scenarioId": id}, &eb); code != http.StatusConflict {
		t.Fatalf("second enrollment with re-entry never answered %d", code)
	}
}
