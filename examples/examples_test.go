package examples_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/preview"
	"github.com/stepcast/stepcast/scenario"
	"github.com/stepcast/stepcast/workflows"
)

// required are the examples this folder promises; any other *.yaml here is
// checked too.
var required = []string{
	"welcome.yaml",
	"dated-sale.yaml",
	"abandoned-cart.yaml",
	"second-push-clickers.yaml",
	"early-interest-route.yaml",
	"weekly.yaml",
	"ab-test.yaml",
}

var tokyo = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		panic(err)
	}
	return loc
}()

// jst is a time in 2026 in Asia/Tokyo.
func jst(month time.Month, day, hour, minute int) time.Time {
	return time.Date(2026, month, day, hour, minute, 0, 0, tokyo)
}

// enrolled is when the hypothetical friends add the account unless a
// journey says otherwise: Friday 30 January 2026 at 14:00, so that "day 1"
// is the 31st and "day 3" is already in February.
var enrolled = jst(time.January, 30, 14, 0)

func TestEveryExampleIsValid(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range required {
		if !slices.Contains(files, name) {
			t.Errorf("example %s is missing", name)
		}
	}
	if len(files) < len(required) {
		t.Fatalf("%d example files, want at least %d", len(files), len(required))
	}
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			doc := load(t, file)
			if doc.TimeZone != "Asia/Tokyo" {
				t.Errorf("timezone = %q; the examples' times are meant in Asia/Tokyo", doc.TimeZone)
			}
		})
	}
}

// load parses and validates an example, failing with every problem.
func load(t *testing.T, file string) scenario.Document {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := scenario.Parse(data)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if err := doc.Validate(); err != nil {
		t.Fatalf("%s:\n%s", file, describe(err))
	}
	return *doc
}

func describe(err error) string {
	var e *stepcast.Error
	if !errors.As(err, &e) {
		return err.Error()
	}
	var b strings.Builder
	b.WriteString(e.Message)
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n  %s: %s", p.Path, p.Message)
	}
	return b.String()
}

// sent is one expected push: which node, when.
type sent struct {
	node string
	at   time.Time
}

// journey is a hypothetical friend going through an example.
type journey struct {
	name   string
	friend preview.Friend
	// start is the friend-add; enrolled when zero.
	start time.Time
	sends []sent
	// end is "completed" or the exit reason.
	end string
	// path, when set, lists nodes that the journey must visit, with their
	// outcome after a colon when one is given ("split:path 0").
	path []string
	// check, when set, looks further at the timeline.
	check func(t *testing.T, tl *preview.Timeline)
}

// runJourneys previews file for each journey and compares the timeline
// with what it expects, exactly: the nodes sent, in order, at their times.
func runJourneys(t *testing.T, file string, journeys []journey) {
	t.Helper()
	doc := load(t, file)
	key := strings.TrimSuffix(file, ".yaml")
	for _, j := range journeys {
		t.Run(j.name, func(t *testing.T) {
			start := j.start
			if start.IsZero() {
				start = enrolled
			}
			tl, err := preview.Run(preview.Input{Document: doc, ScenarioKey: key, Friend: j.friend, Start: start})
			if err != nil {
				t.Fatalf("preview: %s", describe(err))
			}
			if got := sends(tl); !slices.Equal(got, j.sends) {
				t.Errorf("sends:\n  got  %s\n  want %s", format(got), format(j.sends))
			}
			end := tl.End.Status
			if end == workflows.StatusExited {
				end = tl.End.ExitReason
			}
			if end != j.end {
				t.Errorf("end = %q (%+v), want %q", end, tl.End, j.end)
			}
			visited := visits(tl)
			for _, p := range j.path {
				if !slices.ContainsFunc(visited, func(v string) bool { return v == p || strings.HasPrefix(v, p+":") }) {
					t.Errorf("path %v does not visit %s", visited, p)
				}
			}
			if j.check != nil {
				j.check(t, tl)
			}
		})
	}
}

func sends(tl *preview.Timeline) []sent {
	var out []sent
	for _, s := range tl.Sends {
		out = append(out, sent{s.Node, s.At.In(tokyo)})
	}
	return out
}

func format(ss []sent) string {
	if len(ss) == 0 {
		return "nothing"
	}
	var parts []string
	for _, s := range ss {
		parts = append(parts, s.node+" at "+s.at.In(tokyo).Format("Mon 2 Jan 15:04"))
	}
	return strings.Join(parts, ", ")
}

// visits lists the visited nodes as "node" or "node:outcome".
func visits(tl *preview.Timeline) []string {
	var out []string
	for _, v := range tl.Path {
		if v.Outcome != "" {
			out = append(out, v.Node+":"+v.Outcome)
		} else {
			out = append(out, v.Node)
		}
	}
	return out
}

// visitAt returns when the journey left node, failing when it never did.
func visitAt(t *testing.T, tl *preview.Timeline, node string) workflows.Visit {
	t.Helper()
	for _, v := range tl.Path {
		if v.Node == node {
			return v
		}
	}
	t.Fatalf("path %v does not visit %s", visits(tl), node)
	return workflows.Visit{}
}

// text returns the text of message i of send s.
func text(t *testing.T, s preview.Send, i int) string {
	t.Helper()
	var m struct{ Text string }
	if err := json.Unmarshal(s.Messages[i], &m); err != nil {
		t.Fatal(err)
	}
	return m.Text
}

func ev(typ, after string) preview.Event { return preview.Event{Type: typ, After: after} }

const (
	completed = workflows.StatusCompleted
	blocked   = workflows.ExitBlocked
)

func TestWelcome(t *testing.T) {
	day1, day3, day5 := jst(time.January, 31, 10, 0), jst(time.February, 2, 10, 0), jst(time.February, 4, 10, 0)
	runJourneys(t, "welcome.yaml", []journey{
		{
			name: "store QR, cart but no purchase: coupon and reminder",
			friend: preview.Friend{DisplayName: "Aiko", Route: "store-qr",
				Events: []preview.Event{ev("add_to_cart", "20h")}},
			sends: []sent{{"welcome", day1}, {"coupon", day3}, {"cart-reminder", day5}},
			end:   completed,
			check: func(t *testing.T, tl *preview.Timeline) {
				if got := text(t, tl.Sends[0], 0); !strings.HasPrefix(got, "Aikoさん、") {
					t.Errorf("welcome text = %q, want the display name filled in", got)
				}
			},
		},
		{
			name: "another route, bought: no coupon, survey",
			friend: preview.Friend{Route: "instagram",
				Events: []preview.Event{ev("add_to_cart", "30h"), ev("purchase", "50h")}},
			sends: []sent{{"welcome", day1}, {"survey", day5}},
			end:   completed,
		},
		{
			name:   "unknown route, did nothing: welcome only",
			friend: preview.Friend{},
			sends:  []sent{{"welcome", day1}},
			end:    completed,
			path:   []string{"from-store:default", "bought-or-cart:default"},
		},
		{
			// The day-5 decision sees what happened by day 5: a purchase on
			// day 6 is too late to skip the reminder.
			name:   "cart on day 2, buys on day 6: reminder",
			friend: preview.Friend{Events: []preview.Event{ev("add_to_cart", "26h"), ev("purchase", "144h")}},
			sends:  []sent{{"welcome", day1}, {"cart-reminder", day5}},
			end:    completed,
		},
		{
			name: "store QR, blocks on day 1 evening: nothing after the welcome",
			friend: preview.Friend{Route: "store-qr",
				Events: []preview.Event{ev("add_to_cart", "20h"), ev("unfollow", "30h")}},
			sends: []sent{{"welcome", day1}},
			end:   blocked,
		},
	})
}

func TestDatedSale(t *testing.T) {
	runJourneys(t, "dated-sale.yaml", []journey{
		{
			// Stepcast records a delivered event when LINE accepts the
			// announcement; the preview must see it as the real run does.
			name:   "announcement reached: sale 3 days later at 10:00",
			friend: preview.Friend{},
			sends:  []sent{{"announcement", jst(time.February, 1, 19, 0)}, {"sale", jst(time.February, 4, 10, 0)}},
			end:    completed,
			path:   []string{"reached:case 0"},
		},
		{
			name:   "added late on 31 January: everything a day later",
			friend: preview.Friend{},
			start:  jst(time.January, 31, 21, 30),
			sends:  []sent{{"announcement", jst(time.February, 2, 19, 0)}, {"sale", jst(time.February, 5, 10, 0)}},
			end:    completed,
		},
		{
			name:   "blocks after the announcement: no sale",
			friend: preview.Friend{Events: []preview.Event{ev("unfollow", "70h")}},
			sends:  []sent{{"announcement", jst(time.February, 1, 19, 0)}},
			end:    blocked,
		},
	})
}

func TestAbandonedCart(t *testing.T) {
	runJourneys(t, "abandoned-cart.yaml", []journey{
		{
			// The cart is filled at 17:00 on the 30th; the 24 hours count
			// from then, so the reminder goes at 17:00 on the 31st.
			name:   "cart, no purchase: reminder 24h after the cart",
			friend: preview.Friend{DisplayName: "Ken", Events: []preview.Event{ev("add_to_cart", "3h")}},
			sends:  []sent{{"cart-reminder", jst(time.January, 31, 17, 0)}},
			end:    completed,
			path:   []string{"wait-cart:event", "wait-purchase:timeout"},
		},
		{
			// Bought at 10:00 on the 31st: the survey goes the next day
			// (1 February) at 19:00.
			name:   "cart, buys within 24h: survey the next day at 19:00",
			friend: preview.Friend{Events: []preview.Event{ev("add_to_cart", "3h"), ev("purchase", "20h")}},
			sends:  []sent{{"survey", jst(time.February, 1, 19, 0)}},
			end:    completed,
			path:   []string{"wait-cart:event", "wait-purchase:event"},
			check: func(t *testing.T, tl *preview.Timeline) {
				if v := visitAt(t, tl, "wait-purchase"); !v.At.Equal(jst(time.January, 31, 10, 0)) {
					t.Errorf("the purchase wait ended at %s, want when the purchase came", v.At.In(tokyo))
				}
			},
		},
		{
			name:   "cart, buys a minute later: survey, no reminder",
			friend: preview.Friend{Events: []preview.Event{ev("add_to_cart", "3h"), ev("purchase", "3h1m")}},
			sends:  []sent{{"survey", jst(time.January, 31, 19, 0)}},
			end:    completed,
		},
		{
			name:   "cart, buys 25h later: reminder only",
			friend: preview.Friend{Events: []preview.Event{ev("add_to_cart", "3h"), ev("purchase", "28h")}},
			sends:  []sent{{"cart-reminder", jst(time.January, 31, 17, 0)}},
			end:    completed,
		},
		{
			name:   "cart on day 10: reminder on day 11",
			friend: preview.Friend{Events: []preview.Event{ev("add_to_cart", "240h")}},
			sends:  []sent{{"cart-reminder", jst(time.February, 10, 14, 0)}},
			end:    completed,
		},
		{
			name:   "never fills a cart: nothing, leaves after 14 days",
			friend: preview.Friend{Events: []preview.Event{ev("purchase", "400h")}},
			end:    completed,
			path:   []string{"wait-cart:timeout"},
			check: func(t *testing.T, tl *preview.Timeline) {
				if v := visitAt(t, tl, "wait-cart"); !v.At.Equal(jst(time.February, 13, 14, 0)) {
					t.Errorf("the cart wait timed out at %s, want 13 February 14:00", v.At.In(tokyo))
				}
				if len(tl.Path) != 1 {
					t.Errorf("path = %v, want the cart wait only", visits(tl))
				}
			},
		},
	})
}

func TestSecondPushClickers(t *testing.T) {
	noon, evening := jst(time.January, 31, 12, 0), jst(time.January, 31, 20, 0)
	click := func(after string) preview.Event {
		return preview.Event{Type: "click", Node: "new-arrivals", After: after}
	}
	woman := func(age string, events ...preview.Event) preview.Friend {
		return preview.Friend{Attributes: map[string]string{"gender": "female", "age": age}, Events: events}
	}
	both := []sent{{"new-arrivals", noon}, {"evening-push", evening}}
	noonOnly := []sent{{"new-arrivals", noon}}
	runJourneys(t, "second-push-clickers.yaml", []journey{
		{name: "woman of 27 who clicked at 13:00", friend: woman("27", click("23h")), sends: both, end: completed},
		{name: "woman of 20 who clicked (lower bound)", friend: woman("20", click("23h")), sends: both, end: completed},
		{name: "woman of 34 who clicked (upper bound)", friend: woman("34", click("29h")), sends: both, end: completed},
		{name: "woman of 35 who clicked", friend: woman("35", click("23h")), sends: noonOnly, end: completed},
		{name: "woman of 19 who clicked", friend: woman("19", click("23h")), sends: noonOnly, end: completed},
		{name: "woman of 27 who did not click", friend: woman("27"), sends: noonOnly, end: completed},
		{name: "woman of 27 who clicked after 20:00", friend: woman("27", click("31h")), sends: noonOnly, end: completed},
		{name: "woman of 27 who clicked another step's link", friend: woman("27",
			preview.Event{Type: "click", Node: "welcome", After: "23h"}), sends: noonOnly, end: completed},
		{name: "man of 27 who clicked", friend: preview.Friend{Attributes: map[string]string{"gender": "male", "age": "27"},
			Events: []preview.Event{click("23h")}}, sends: noonOnly, end: completed},
		{name: "woman without an age who clicked", friend: preview.Friend{Attributes: map[string]string{"gender": "female"},
			Events: []preview.Event{click("23h")}}, sends: noonOnly, end: completed},
	})
}

func TestEarlyInterestRoute(t *testing.T) {
	doc := load(t, "early-interest-route.yaml")
	if doc.Start.Type != scenario.StartFollow || !slices.Equal(doc.Start.Routes, []string{"ad-campaign-x"}) {
		t.Errorf("start = %+v, want a follow start for route ad-campaign-x only", doc.Start)
	}
	runJourneys(t, "early-interest-route.yaml", []journey{
		{
			name:   "added at 14:00: interest at 14:30, welcome the next day at 10:00",
			friend: preview.Friend{Route: "ad-campaign-x"},
			sends:  []sent{{"interest", jst(time.January, 30, 14, 30)}, {"welcome", jst(time.January, 31, 10, 0)}},
			end:    completed,
		},
		{
			// Day 1 counts from the friend-add's day (31 January), not from
			// the interest message sent after midnight.
			name:   "added at 23:45 on 31 January: interest at 00:15, welcome on 1 February at 10:00",
			friend: preview.Friend{Route: "ad-campaign-x"},
			start:  jst(time.January, 31, 23, 45),
			sends:  []sent{{"interest", jst(time.February, 1, 0, 15)}, {"welcome", jst(time.February, 1, 10, 0)}},
			end:    completed,
		},
		{
			name:   "blocks within 10 minutes: nothing",
			friend: preview.Friend{Route: "ad-campaign-x", Events: []preview.Event{ev("unfollow", "10m")}},
			end:    blocked,
		},
		{
			name:   "blocks after the interest message: no welcome",
			friend: preview.Friend{Route: "ad-campaign-x", Events: []preview.Event{ev("unfollow", "2h")}},
			sends:  []sent{{"interest", jst(time.January, 30, 14, 30)}},
			end:    blocked,
		},
	})
}

func TestWeekly(t *testing.T) {
	var all []sent
	for w := range 8 {
		all = append(all, sent{fmt.Sprintf("week%d", w+1), jst(time.February, 6+7*w, 10, 0)})
	}
	// 6 February + 7w: time.Date normalises 34 February to 6 March.
	if !all[4].at.Equal(jst(time.March, 6, 10, 0)) || !all[7].at.Equal(jst(time.March, 27, 10, 0)) {
		t.Fatalf("expected weeks are wrong: %s", format(all))
	}
	runJourneys(t, "weekly.yaml", []journey{
		{name: "every Friday at 10:00 for 8 weeks", friend: preview.Friend{}, sends: all, end: completed},
		{
			name:   "added on Saturday at 09:00: every Saturday at 10:00",
			friend: preview.Friend{},
			start:  jst(time.January, 31, 9, 0),
			sends: func() []sent {
				var out []sent
				for w := range 8 {
					out = append(out, sent{fmt.Sprintf("week%d", w+1), jst(time.February, 7+7*w, 10, 0)})
				}
				return out
			}(),
			end: completed,
		},
		{
			name:   "blocks on day 20: weeks 1 and 2 only",
			friend: preview.Friend{Events: []preview.Event{ev("unfollow", "480h")}},
			sends:  all[:2],
			end:    blocked,
		},
	})
}

// Two LINE user IDs that the split sends different ways in scenario
// "ab-test" (the split hashes the user ID, the scenario key and the node).
const (
	userA = "U1a2b3c4d5e6f708192a3b4c5d6e7f801"
	userB = "U0f1e2d3c4b5a69788796a5b4c3d2e1f0"
)

func TestABTest(t *testing.T) {
	day1, day3 := jst(time.January, 31, 10, 0), jst(time.February, 2, 12, 0)
	runJourneys(t, "ab-test.yaml", []journey{
		{
			name:   "friend A: welcome A, tagged A, follow-up",
			friend: preview.Friend{UserID: userA},
			sends:  []sent{{"welcome-a", day1}, {"follow-up", day3}},
			end:    completed,
			path:   []string{"split:path 0", "tag-a"},
			check:  notVisiting("tag-b"),
		},
		{
			name:   "friend B: welcome B, tagged B, follow-up",
			friend: preview.Friend{UserID: userB},
			sends:  []sent{{"welcome-b", day1}, {"follow-up", day3}},
			end:    completed,
			path:   []string{"split:path 1", "tag-b"},
			check:  notVisiting("tag-a"),
		},
		{
			name:   "friend A blocks before day 1: no variant",
			friend: preview.Friend{UserID: userA, Events: []preview.Event{ev("unfollow", "1h")}},
			end:    blocked,
			check:  notVisiting("tag-a"),
		},
	})
}

func notVisiting(node string) func(*testing.T, *preview.Timeline) {
	return func(t *testing.T, tl *preview.Timeline) {
		for _, v := range tl.Path {
			if v.Node == node {
				t.Errorf("path %v visits %s", visits(tl), node)
			}
		}
	}
}

// TestABTestSplitsEvenly previews many friends: about half get each
// variant, and a friend previewed twice gets the same one.
func TestABTestSplitsEvenly(t *testing.T) {
	doc := load(t, "ab-test.yaml")
	variant := func(userID string) string {
		tl, err := preview.Run(preview.Input{Document: doc, ScenarioKey: "ab-test", Friend: preview.Friend{UserID: userID}, Start: enrolled})
		if err != nil {
			t.Fatal(err)
		}
		if len(tl.Sends) != 2 {
			t.Fatalf("%s: sends %s, want a welcome and the follow-up", userID, format(sends(tl)))
		}
		return tl.Sends[0].Node
	}
	const n = 100
	count := map[string]int{}
	for i := range n {
		id := fmt.Sprintf("U%032x", 0x5eed0000+i*7919)
		v := variant(id)
		count[v]++
		if i%10 == 0 && variant(id) != v {
			t.Errorf("%s got %s, then the other variant", id, v)
		}
	}
	if count["welcome-a"]+count["welcome-b"] != n || count["welcome-a"] < 35 || count["welcome-b"] < 35 {
		t.Errorf("variants over %d friends: %v, want about half each", n, count)
	}
}
