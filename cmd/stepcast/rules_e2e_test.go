package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stepcast/stepcast/internal/testenv"
)

// The budget through the HTTP surface: a step over it holds (nothing
// dropped), raising it sends the held step once.
func TestBudgetHoldsUntilRaised(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	s.mustDo("PATCH", fmt.Sprintf("/api/v1/channels/%d", ch), map[string]any{"monthlyBudget": 1}, nil)
	s.publish(ch, "welcome", map[string]any{"name": "W", "start": map[string]any{"type": "follow"},
		"nodes": []any{msgNode("one", "one", "two"), msgNode("two", "two", "")}})
	user := testenv.UserID()
	s.event(ch, "follow", user)
	waitFor(t, 20*time.Second, "the first push", func() bool { return len(s.line.PushesTo(user)) == 1 })
	var e EnrollmentStateJSON
	waitFor(t, 20*time.Second, "the second step to be held for the budget", func() bool {
		s.mustDo("GET", fmt.Sprintf("/api/v1/channels/%d/enrollments/%d", ch, s.enrollments(ch)[0].ID), nil, &e)
		return e.State != nil && e.State.Status == "held"
	})
	if n := len(s.line.PushesTo(user)); n != 1 {
		t.Fatalf("%d pushes over a budget of 1", n)
	}
	s.mustDo("PATCH", fmt.Sprintf("/api/v1/channels/%d", ch), map[string]any{"monthlyBudget": 10}, nil)
	waitFor(t, 20*time.Second, "the held push", func() bool { return len(s.line.PushesTo(user)) == 2 })
	time.Sleep(time.Second)
	if n := len(s.line.PushesTo(user)); n != 2 {
		t.Fatalf("%d pushes after the raise, want 2", n)
	}
	var eb errorJSON
	for name, body := range map[string]any{
		"negative budget":  map[string]any{"monthlyBudget": -1},
		"bad quiet hours":  map[string]any{"quietHours": map[string]any{"start": "25:00", "end": "08:00"}},
		"same quiet hours": map[string]any{"quietHours": map[string]any{"start": "08:00", "end": "08:00"}},
		"rate over LINE's": map[string]any{"rateLimit": 5000},
		"unknown field":    map[string]any{"budget": 3},
	} {
		if code := s.do("PATCH", fmt.Sprintf("/api/v1/channels/%d", ch), body, &eb); code != 400 {
			t.Errorf("%s answered %d", name, code)
		}
	}
	var c struct{ MonthlyBudget int64 }
	s.mustDo("GET", fmt.Sprintf("/api/v1/channels/%d", ch), nil, &c)
	if c.MonthlyBudget != 10 {
		t.Fatalf("refused patches changed the budget to %d", c.MonthlyBudget)
	}
}

// Quiet hours that cover now hold a due step; removing them sends it.
func TestQuietHoursHold(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	now := time.Now().In(tokyo)
	from, to := now.Add(-time.Hour).Format("15:04"), now.Add(2*time.Hour).Format("15:04")
	s.mustDo("PATCH", fmt.Sprintf("/api/v1/channels/%d", ch), map[string]any{"quietHours": map[string]any{"start": from, "end": to}}, nil)
	s.publish(ch, "welcome", map[string]any{"name": "W", "start": map[string]any{"type": "follow"},
		"nodes": []any{msgNode("one", "one", "")}})
	user := testenv.UserID()
	s.event(ch, "follow", user)
	var e EnrollmentStateJSON
	waitFor(t, 20*time.Second, "the step to be held for quiet hours", func() bool {
		es := s.enrollments(ch)
		if len(es) == 0 {
			return false
		}
		s.mustDo("GET", fmt.Sprintf("/api/v1/channels/%d/enrollments/%d", ch, es[0].ID), nil, &e)
		return e.State != nil && e.State.Status == "held"
	})
	time.Sleep(time.Second)
	if len(s.line.PushesTo(user)) != 0 {
		t.Fatal("a push went out in quiet hours")
	}
	s.mustDo("PATCH", fmt.Sprintf("/api/v1/channels/%d", ch), map[string]any{"quietHours": nil}, nil)
	waitFor(t, 20*time.Second, "the push after quiet hours were removed", func() bool { return len(s.line.PushesTo(user)) == 1 })
}

// A friend who blocks and comes back enters again only when the
// scenario's re-entry rule says so; the period bounds enrollments.
func TestReentryAndPeriod(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	s.publish(ch, "again", map[string]any{"name": "Again", "start": map[string]any{"type": "follow", "reentry": "after_exit"},
		"nodes": []any{msgNode("hi", "again", "")}})
	s.publish(ch, "once", map[string]any{"name": "Once", "start": map[string]any{"type": "follow"},
		"nodes": []any{msgNode("hi", "once", "")}})
	s.publish(ch, "over", map[string]any{"name": "Over", "start": map[string]any{"type": "follow"},
		"period": map[string]any{"until": time.Now().Add(-time.Hour)}, "nodes": []any{msgNode("hi", "over", "")}})
	s.publish(ch, "later", map[string]any{"name": "Later", "start": map[string]any{"type": "follow"},
		"period": map[string]any{"from": time.Now().Add(time.Hour)}, "nodes": []any{msgNode("hi", "later", "")}})
	user := testenv.UserID()
	s.event(ch, "follow", user)
	waitFor(t, 20*time.Second, "two pushes", func() bool { return len(s.line.PushesTo(user)) == 2 })
	waitFor(t, 20*time.Second, "both enrollments to complete", func() bool {
		es := s.enrollments(ch)
		return len(es) == 2 && es[0].Status == "completed" && es[1].Status == "completed"
	})
	s.event(ch, "unfollow", user)
	time.Sleep(200 * time.Millisecond)
	s.event(ch, "follow", user)
	waitFor(t, 20*time.Second, "the re-entry push", func() bool { return len(s.line.PushesTo(user)) == 3 })
	time.Sleep(2 * time.Second)
	got := pushTexts(s.line.PushesTo(user))
	count := map[string]int{}
	for _, g := range got {
		count[g]++
	}
	if count["text:again"] != 2 || count["text:once"] != 1 || count["text:over"] != 0 || count["text:later"] != 0 {
		t.Fatalf("pushes = %v: want again twice, once once, none outside their period", got)
	}
}

// A tracked friend-add link counts the visit per route and sends the
// person to the account's add-friend URL.
func TestAddFriendLink(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	var eb errorJSON
	res, err := noRedirect.Get(fmt.Sprintf("%s/add/%d/store-qr", s.url, ch))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("add link without an add-friend URL answered %d", res.StatusCode)
	}
	if code := s.do("PATCH", fmt.Sprintf("/api/v1/channels/%d", ch), map[string]any{"addFriendUrl": "http://line.me/R/ti/p/@shop"}, &eb); code != 400 {
		t.Fatalf("http add-friend URL answered %d", code)
	}
	s.mustDo("PATCH", fmt.Sprintf("/api/v1/channels/%d", ch), map[string]any{"addFriendUrl": "https://line.me/R/ti/p/@shop"}, nil)
	for _, route := range []string{"store-qr", "store-qr", "ad.x"} {
		res, err := noRedirect.Get(fmt.Sprintf("%s/add/%d/%s", s.url, ch, route))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "https://line.me/R/ti/p/@shop" {
			t.Fatalf("add link answered %d to %q", res.StatusCode, res.Header.Get("Location"))
		}
	}
	res, err = noRedirect.Get(fmt.Sprintf("%s/add/%d/%s", s.url, ch, "bad%20route"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad route answered %d", res.StatusCode)
	}
	var v struct{ Visits map[string]int }
	s.mustDo("GET", fmt.Sprintf("/api/v1/channels/%d/route-visits", ch), nil, &v)
	if v.Visits["store-qr"] != 2 || v.Visits["ad.x"] != 1 || len(v.Visits) != 2 {
		t.Fatalf("visits = %v", v.Visits)
	}
}

// The frequency cap through the HTTP surface: a friend's second step in a
// rolling day waits, shown as held for the cap.
func TestFrequencyCapHolds(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	s.mustDo("PATCH", fmt.Sprintf("/api/v1/channels/%d", ch), map[string]any{"frequencyCap": 1}, nil)
	s.publish(ch, "welcome", map[string]any{"name": "W", "start": map[string]any{"type": "follow"},
		"nodes": []any{msgNode("one", "one", "two"), msgNode("two", "two", "")}})
	user := testenv.UserID()
	s.event(ch, "follow", user)
	var e struct {
		State *struct{ Status, HeldReason string }
	}
	waitFor(t, 20*time.Second, "the second step to be held for the cap", func() bool {
		es := s.enrollments(ch)
		if len(es) == 0 {
			return false
		}
		s.mustDo("GET", fmt.Sprintf("/api/v1/channels/%d/enrollments/%d", ch, es[0].ID), nil, &e)
		return e.State != nil && e.State.Status == "held" && e.State.HeldReason == "frequency cap"
	})
	if n := len(s.line.PushesTo(user)); n != 1 {
		t.Fatalf("%d pushes with a cap of 1 a day", n)
	}
	s.mustDo("PATCH", fmt.Sprintf("/api/v1/channels/%d", ch), map[string]any{"frequencyCap": 0}, nil)
	waitFor(t, 20*time.Second, "the held push once the cap is lifted", func() bool { return len(s.line.PushesTo(user)) == 2 })
}
