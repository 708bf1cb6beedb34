package models_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/scenario"
)

// statsDocument is the published version of the seeded scenario: a
// message, a branch, a second message on one path, a wait for a purchase
// with a reminder on timeout, and an exit; a purchase of 1000 or more is a
// conversion.
const statsDocument = `{
  "name": "Welcome",
  "start": {"type": "follow"},
  "conversion": {"type": "purchase", "props": [{"key": "amount", "op": "gte", "value": "1000"}]},
  "nodes": [
    {"id": "hello", "type": "message", "message": {"messages": [{"type": "text", "text": "Hi"}]}, "next": "b"},
    {"id": "b", "type": "branch", "branch": {"cases": [{"when": {"route": ["store-qr"]}, "next": "coupon"}], "default": "we"}},
    {"id": "coupon", "type": "message", "message": {"messages": [{"type": "text", "text": "10% off"}]}, "next": "we"},
    {"id": "we", "type": "wait_event", "waitEvent": {"event": {"type": "purchase"}, "timeout": {"after": "48h"}, "onEvent": "x", "onTimeout": "remind"}},
    {"id": "remind", "type": "message", "message": {"messages": [{"type": "text", "text": "Still thinking?"}]}, "next": "x"},
    {"id": "x", "type": "exit"}
  ]
}`

// statsDraft is the scenario's draft, edited after publishing: statistics
// list the published version's nodes, not these.
const statsDraft = `{
  "name": "Welcome",
  "start": {"type": "follow"},
  "nodes": [
    {"id": "hello", "type": "message", "message": {"messages": [{"type": "text", "text": "Hi"}]}, "next": "extra"},
    {"id": "extra", "type": "exit"}
  ]
}`

// draftOnlyDocument is a scenario never published: its draft's nodes are
// listed.
const draftOnlyDocument = `{
  "name": "Split test",
  "start": {"type": "manual"},
  "nodes": [
    {"id": "hello", "type": "message", "message": {"messages": [{"type": "text", "text": "A"}]}, "next": "sp"},
    {"id": "sp", "type": "split", "split": {"paths": [{"weight": 1, "next": "x"}, {"weight": 1, "next": "x"}]}},
    {"id": "x", "type": "exit"}
  ]
}`

func TestScenarioStatsPostgres(t *testing.T) { testScenarioStats(t, testenv.Postgres(t)) }

func TestScenarioStatsSQLite(t *testing.T) { testScenarioStats(t, testenv.SQLite(t)) }

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// statsSeed writes the rows the statistics are computed from.
type statsSeed struct {
	t       *testing.T
	db      *models.Store
	ch      models.Channel
	s1, s2  models.Scenario
	friends []models.Friend
	n       int
}

func (s *statsSeed) create(v any) {
	s.t.Helper()
	require.NoError(s.t, s.db.DB.Create(v).Error)
}

func (s *statsSeed) next() int { s.n++; return s.n }

func (s *statsSeed) enroll(sc *models.Scenario, friend int, status, reason, started string) {
	s.t.Helper()
	n := s.next()
	e := models.Enrollment{ChannelID: s.ch.ID, ScenarioID: sc.ID, ScenarioVersion: 1, FriendID: s.friends[friend].ID,
		WorkflowID: fmt.Sprintf("enrollment/%d/%s/%d", s.ch.ID, sc.Key, n), RunID: fmt.Sprint(n),
		Status: status, ExitReason: reason, StartedAt: at(started)}
	s.create(&e)
}

// deliver records a step push; sent is its sent time when the status is
// sent, else its creation time.
func (s *statsSeed) deliver(sc *models.Scenario, friend int, node, status, when string) {
	s.t.Helper()
	n := s.next()
	d := models.Delivery{ChannelID: s.ch.ID, ScenarioID: sc.ID, FriendID: s.friends[friend].ID,
		WorkflowID: fmt.Sprintf("wf-%d", n), RunID: "r", NodeID: node, RetryKey: fmt.Sprintf("key-%d", n),
		Status: status, MessageCount: 1, Attempts: 1, CreatedAt: at(when)}
	if status == models.DeliverySent {
		sent := at(when)
		d.SentAt = &sent
		d.CreatedAt = sent.Add(-time.Second)
	}
	s.create(&d)
}

func (s *statsSeed) event(friend int, typ, scenarioKey, node, props, when string) {
	s.t.Helper()
	e := models.FriendEvent{ChannelID: s.ch.ID, FriendID: s.friends[friend].ID, Type: typ, ScenarioKey: scenarioKey,
		NodeID: node, Props: props, At: at(when)}
	_, err := s.db.RecordEvent(context.Background(), &e)
	require.NoError(s.t, err)
}

func (s *statsSeed) step(sc *models.Scenario, friend int, node, kind, outcome, when string) {
	s.t.Helper()
	require.NoError(s.t, s.db.RecordStepEvent(context.Background(), &models.StepEvent{ChannelID: s.ch.ID, ScenarioID: sc.ID,
		NodeID: node, FriendID: s.friends[friend].ID, Kind: kind, Outcome: outcome, At: at(when)}))
}

// seedStats writes a channel in Japan time with two scenarios and their
// enrollments, pushes, clicks, purchases and step events, spread over
// several days across JST midnights (15:00 UTC). Every row is commented
// with whether the main window, 2026-11-21T00:00Z (09:00 JST) to
// 2026-11-25T00:00Z, counts it.
func seedStats(t *testing.T, db *models.Store) *statsSeed {
	t.Helper()
	ctx := context.Background()
	for _, d := range []string{statsDocument, statsDraft, draftOnlyDocument} {
		doc, err := scenario.Parse([]byte(d))
		require.NoError(t, err)
		require.NoError(t, doc.Validate())
	}
	s := &statsSeed{t: t, db: db}
	s.ch = models.Channel{Name: "shop", LineChannelID: "2000000001", Secret: "s", AccessToken: "a", TimeZone: "Asia/Tokyo"}
	require.NoError(t, db.CreateChannel(ctx, &s.ch))
	s.s1 = models.Scenario{ChannelID: s.ch.ID, Key: "welcome", Name: "Welcome", Draft: statsDocument}
	require.NoError(t, db.CreateScenario(ctx, &s.s1))
	_, err := db.Publish(ctx, s.s1.ID, statsDocument, at("2026-11-01T00:00:00Z"))
	require.NoError(t, err)
	require.NoError(t, db.UpdateDraft(ctx, s.s1.ID, "Welcome", statsDraft))
	s.s2 = models.Scenario{ChannelID: s.ch.ID, Key: "split-test", Name: "Split test", Draft: draftOnlyDocument}
	require.NoError(t, db.CreateScenario(ctx, &s.s2))

	// friends[0] is unused so that f1..f6 read as friends 1 to 6.
	s.friends = make([]models.Friend, 7)
	for i := 1; i <= 6; i++ {
		s.friends[i] = models.Friend{ChannelID: s.ch.ID, UserID: testenv.UserID(), Status: models.FriendFollowing}
		s.create(&s.friends[i])
	}
	s1, s2 := &s.s1, &s.s2

	// Enrollments.
	s.enroll(s1, 1, models.EnrollmentRunning, "", "2026-11-21T01:00:00Z")              // 11-21 10:00 JST
	s.enroll(s1, 2, models.EnrollmentCompleted, "", "2026-11-21T14:59:00Z")            // 11-21 23:59 JST
	s.enroll(s1, 3, models.EnrollmentExited, "blocked", "2026-11-21T15:00:00Z")        // 11-22 00:00 JST
	s.enroll(s1, 4, models.EnrollmentExited, "blocked", "2026-11-22T16:00:00Z")        // 11-23 01:00 JST
	s.enroll(s1, 5, models.EnrollmentExited, "exit node", "2026-11-23T03:00:00Z")      // 11-23 12:00 JST
	s.enroll(s1, 6, models.EnrollmentRunning, "", "2026-11-20T23:00:00Z")              // before the window, same JST day
	s.enroll(s1, 3, models.EnrollmentRunning, "", "2026-11-25T00:00:00Z")              // at to: outside
	s.enroll(s2, 1, models.EnrollmentRunning, "", "2026-11-22T00:00:00Z")              // other scenario
	s.enroll(s2, 2, models.EnrollmentExited, "scenario ended", "2026-11-19T00:00:00Z") // other scenario, before
	s.enroll(s1, 5, models.EnrollmentCompleted, "", "2026-11-19T00:00:00Z")            // before the window

	// Deliveries.
	s.deliver(s1, 1, "hello", models.DeliverySent, "2026-11-21T01:00:00Z")     // 11-21 JST
	s.deliver(s1, 2, "hello", models.DeliverySent, "2026-11-21T14:30:00Z")     // 11-21 23:30 JST
	s.deliver(s1, 3, "hello", models.DeliverySent, "2026-11-21T15:30:00Z")     // 11-22 00:30 JST
	s.deliver(s1, 4, "hello", models.DeliveryFailed, "2026-11-22T16:00:00Z")   // failed
	s.deliver(s1, 5, "hello", models.DeliverySent, "2026-11-23T03:00:00Z")     // 11-23 JST
	s.deliver(s1, 1, "coupon", models.DeliverySent, "2026-11-22T01:00:00Z")    // 11-22 JST
	s.deliver(s1, 2, "remind", models.DeliverySent, "2026-11-23T10:00:00Z")    // 11-23 JST
	s.deliver(s1, 3, "remind", models.DeliveryFailed, "2026-11-23T11:00:00Z")  // failed
	s.deliver(s1, 6, "hello", models.DeliverySent, "2026-11-20T23:00:00Z")     // before the window
	s.deliver(s1, 5, "remind", models.DeliverySending, "2026-11-24T01:00:00Z") // still sending: not counted
	s.deliver(s1, 1, "gone", models.DeliverySent, "2026-11-22T02:00:00Z")      // node of an old version: scenario total only
	s.deliver(s1, 4, "coupon", models.DeliveryFailed, "2026-11-20T10:00:00Z")  // failed before the window
	s.deliver(s2, 1, "hello", models.DeliverySent, "2026-11-22T00:30:00Z")     // other scenario

	// Clicks on the scenario's tracked links.
	s.event(1, "click", "welcome", "hello", "", "2026-11-21T02:00:00Z")    // f1 11-21
	s.event(1, "click", "welcome", "hello", "", "2026-11-21T03:00:00Z")    // f1 again, same day
	s.event(1, "click", "welcome", "hello", "", "2026-11-22T05:00:00Z")    // f1 11-22
	s.event(2, "click", "welcome", "hello", "", "2026-11-21T14:50:00Z")    // f2 11-21 23:50 JST
	s.event(1, "click", "welcome", "coupon", "", "2026-11-22T02:00:00Z")   // f1 11-22
	s.event(3, "click", "welcome", "hello", "", "2026-11-20T12:00:00Z")    // before the window
	s.event(1, "click", "split-test", "hello", "", "2026-11-22T12:00:00Z") // other scenario
	s.event(4, "postback", "welcome", "hello", "", "2026-11-23T12:00:00Z") // not a click
	s.event(5, "click", "welcome", "hello", "", "2026-11-25T00:00:00Z")    // at to: outside

	// Purchases: a conversion is amount >= 1000 within 7 days after a send.
	s.event(1, "purchase", "", "", `{"amount":"5000"}`, "2026-11-21T00:30:00Z")  // before f1's first send
	s.event(1, "purchase", "", "", `{"amount":"500"}`, "2026-11-21T05:00:00Z")   // after a send, too small
	s.event(1, "purchase", "", "", `{"amount":1500}`, "2026-11-22T01:30:00Z")    // converts hello and coupon, 11-22 JST
	s.event(2, "purchase", "", "", `{"amount":"1000"}`, "2026-11-23T12:00:00Z")  // converts hello and remind, 11-23 JST
	s.event(2, "purchase", "", "", `{"amount":"2000"}`, "2026-11-24T00:00:00Z")  // f2 again, 11-24 JST
	s.event(3, "purchase", "", "", `{"amount":"3000"}`, "2026-11-25T01:00:00Z")  // after the window
	s.event(5, "purchase", "", "", `{"amount":"2000"}`, "2026-11-23T02:00:00Z")  // before f5's send
	s.event(6, "purchase", "", "", `{"amount":"9999"}`, "2026-11-21T10:00:00Z")  // f6 was sent before the window only
	s.event(3, "page_view", "", "", `{"amount":"5000"}`, "2026-11-22T00:00:00Z") // not a purchase
	s.event(3, "purchase", "", "", `{"currency":"JPY"}`, "2026-11-22T01:00:00Z") // no amount
	s.event(5, "purchase", "", "", `{"amount":"1200"}`, "2026-12-01T04:00:00Z")  // 8 days after f5's send

	// Holds and branch visits.
	s.step(s1, 1, "hello", models.StepHeld, "budget", "2026-11-21T00:30:00Z")
	s.step(s1, 1, "hello", models.StepHeld, "budget", "2026-11-21T00:40:00Z") // f1 again
	s.step(s1, 2, "hello", models.StepHeld, "quiet hours", "2026-11-21T14:00:00Z")
	s.step(s1, 2, "hello", models.StepHeld, "budget", "2026-11-21T14:10:00Z")
	s.step(s1, 3, "remind", models.StepHeld, "frequency cap", "2026-11-23T10:30:00Z")
	s.step(s1, 4, "hello", models.StepHeld, "budget", "2026-11-19T00:00:00Z") // before the window
	s.step(s2, 1, "hello", models.StepHeld, "budget", "2026-11-22T00:00:00Z") // other scenario
	s.step(s1, 1, "b", models.StepVisit, "case 0", "2026-11-21T01:01:00Z")
	s.step(s1, 2, "b", models.StepVisit, "default", "2026-11-21T14:31:00Z")
	s.step(s1, 3, "b", models.StepVisit, "default", "2026-11-21T15:31:00Z")
	s.step(s1, 5, "b", models.StepVisit, "default", "2026-11-24T03:00:00Z")
	s.step(s1, 4, "b", models.StepVisit, "default", "2026-11-18T00:00:00Z") // before the window
	s.step(s1, 1, "we", models.StepVisit, "event", "2026-11-22T01:30:00Z")
	s.step(s1, 2, "we", models.StepVisit, "timeout", "2026-11-23T09:59:00Z")
	s.step(s1, 3, "we", models.StepVisit, "timeout", "2026-11-23T10:29:00Z")
	s.step(s2, 1, "sp", models.StepVisit, "path 1", "2026-11-22T00:10:00Z")
	return s
}

func testScenarioStats(t *testing.T, db *models.Store) {
	ctx := context.Background()
	s := seedStats(t, db)
	from, to := at("2026-11-21T00:00:00Z"), at("2026-11-25T00:00:00Z")

	got, err := db.ScenarioStats(ctx, s.s1.ID, from.In(time.FixedZone("x", 3600)), to)
	require.NoError(t, err)
	want := &models.ScenarioStats{
		ScenarioID: s.s1.ID, Version: 1, From: from, To: to, TimeZone: "Asia/Tokyo",
		Enrolled: 5, Running: 1, Completed: 1, Exited: map[string]int64{"blocked": 2, "exit node": 1},
		Sent: 7, Failed: 2, UniqueClicks: 2, Conversions: 2,
		Nodes: []models.NodeStats{
			{NodeID: "hello", Type: "message", Sent: 4, Failed: 1, HeldFriends: 2, Held: map[string]int64{"budget": 2, "quiet hours": 1},
				UniqueClicks: 2, Conversions: 2},
			{NodeID: "b", Type: "branch", Held: map[string]int64{}, Branches: map[string]int64{"case 0": 1, "default": 3}},
			{NodeID: "coupon", Type: "message", Sent: 1, Held: map[string]int64{}, UniqueClicks: 1, Conversions: 1},
			{NodeID: "we", Type: "wait_event", Held: map[string]int64{}, Branches: map[string]int64{"event": 1, "timeout": 2}},
			{NodeID: "remind", Type: "message", Sent: 1, Failed: 1, HeldFriends: 1, Held: map[string]int64{"frequency cap": 1}, Conversions: 1},
			{NodeID: "x", Type: "exit", Held: map[string]int64{}},
		},
		Series: []models.DayStats{
			{Date: "2026-11-21", Enrolled: 2, Sent: 2, Clicks: 2},
			{Date: "2026-11-22", Enrolled: 1, Sent: 3, Clicks: 1, Conversions: 1},
			{Date: "2026-11-23", Enrolled: 2, Sent: 2, Conversions: 1},
			{Date: "2026-11-24", Conversions: 1},
			{Date: "2026-11-25"},
		},
	}
	require.Equal(t, want, got)

	// A wider window: f3's late purchase now converts its send, f5's comes
	// 8 days after its send, past the default 7-day conversion window.
	got, err = db.ScenarioStats(ctx, s.s1.ID, from, at("2026-12-05T00:00:00Z"))
	require.NoError(t, err)
	require.Equal(t, int64(6), got.Enrolled)
	require.Equal(t, int64(2), got.Running)
	require.Equal(t, int64(3), got.Conversions)
	require.Equal(t, "hello", got.Nodes[0].NodeID)
	require.Equal(t, int64(3), got.Nodes[0].Conversions)
	require.Equal(t, int64(3), got.Nodes[0].UniqueClicks)
	require.Len(t, got.Series, 15)
	require.Equal(t, models.DayStats{Date: "2026-11-25", Enrolled: 1, Clicks: 1, Conversions: 1}, got.Series[4])
	require.Equal(t, "2026-12-05", got.Series[14].Date)

	// A never published scenario lists its draft's nodes.
	got, err = db.ScenarioStats(ctx, s.s2.ID, from, to)
	require.NoError(t, err)
	require.Equal(t, &models.ScenarioStats{
		ScenarioID: s.s2.ID, Version: 0, From: from, To: to, TimeZone: "Asia/Tokyo",
		Enrolled: 1, Running: 1, Exited: map[string]int64{}, Sent: 1, UniqueClicks: 1,
		Nodes: []models.NodeStats{
			{NodeID: "hello", Type: "message", Sent: 1, HeldFriends: 1, Held: map[string]int64{"budget": 1}, UniqueClicks: 1},
			{NodeID: "sp", Type: "split", Held: map[string]int64{}, Branches: map[string]int64{"path 1": 1}},
			{NodeID: "x", Type: "exit", Held: map[string]int64{}},
		},
		Series: []models.DayStats{
			{Date: "2026-11-21"}, {Date: "2026-11-22", Enrolled: 1, Sent: 1, Clicks: 1}, {Date: "2026-11-23"}, {Date: "2026-11-24"}, {Date: "2026-11-25"},
		},
	}, got)

	// Windows the statistics refuse, and a scenario that does not exist.
	_, err = db.ScenarioStats(ctx, s.s1.ID, to, to)
	require.Equal(t, stepcast.EINVALID, stepcast.ErrorCode(err), "%v", err)
	_, err = db.ScenarioStats(ctx, s.s1.ID, to, from)
	require.Equal(t, stepcast.EINVALID, stepcast.ErrorCode(err), "%v", err)
	_, err = db.ScenarioStats(ctx, s.s1.ID, to.Add(-models.MaxStatsSpan-time.Second), to)
	require.Equal(t, stepcast.EINVALID, stepcast.ErrorCode(err), "%v", err)
	_, err = db.ScenarioStats(ctx, s.s1.ID, to.Add(-models.MaxStatsSpan), to)
	require.NoError(t, err)
	_, err = db.ScenarioStats(ctx, 999999, from, to)
	require.Equal(t, stepcast.ENOTFOUND, stepcast.ErrorCode(err), "%v", err)
}
