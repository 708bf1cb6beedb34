package models

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/scenario"
)

// MaxStatsSpan is the longest window statistics are computed over.
const MaxStatsSpan = 400 * 24 * time.Hour

// ScenarioStats are a scenario's statistics over a window [From, To).
//
// Enrollments count by when they started: Enrolled are those started in the
// window, and Running, Completed and Exited split them by their status now.
// Sends count by when they were sent, failures by when they were attempted,
// clicks, holds and branch visits by when they happened. A conversion is an
// event matching the document's conversion that comes after a send of the
// scenario to the same friend in the window, at most the conversion window
// (Conversion.Within, else scenario.DefaultConversionWindow) after it, and
// itself before To.
type ScenarioStats struct {
	ScenarioID uint
	// Version is the published version whose nodes are listed; 0 is the
	// draft (a scenario never published).
	Version  int
	From, To time.Time
	// TimeZone is the channel's: the one days of Series are in.
	TimeZone string

	Enrolled  int64
	Running   int64
	Completed int64
	// Exited counts exited enrollments by exit reason ("unknown" when none
	// was recorded).
	Exited map[string]int64

	// Sent and Failed count every step of the scenario, of any version.
	Sent   int64
	Failed int64
	// UniqueClicks and Conversions count distinct friends over the whole
	// scenario.
	UniqueClicks int64
	Conversions  int64

	Nodes  []NodeStats
	Series []DayStats
}

// NodeStats are the statistics of one node of the scenario's document.
type NodeStats struct {
	NodeID string
	Type   string
	Sent   int64
	Failed int64
	// HeldFriends is how many distinct friends had the step held for any
	// reason; Held breaks them down by reason (budget, quiet hours...), so
	// a friend held for two reasons counts under both.
	HeldFriends int64
	Held        map[string]int64
	// UniqueClicks is how many distinct friends clicked a tracked link of
	// the node.
	UniqueClicks int64
	// Conversions is how many distinct friends converted after the node was
	// sent to them.
	Conversions int64
	// Branches counts the paths a branch, split or wait_event node took by
	// outcome ("case 0", "default", a split path, "event", "timeout"...);
	// nil for other nodes.
	Branches map[string]int64
}

// DayStats are one day of a scenario's statistics, in the channel's time
// zone.
type DayStats struct {
	// Date is the day, "2006-01-02".
	Date     string
	Enrolled int64
	Sent     int64
	// Clicks is how many distinct friends clicked a link of the scenario
	// that day.
	Clicks int64
	// Conversions is how many distinct friends converted that day.
	Conversions int64
}

// friendSet is a set of friend IDs.
type friendSet map[uint]struct{}

func (s friendSet) add(id uint) { s[id] = struct{}{} }

// ScenarioStats computes a scenario's statistics over [from, to). The nodes
// are those of the latest published version, or of the draft when the
// scenario was never published, in document order.
func (s *Store) ScenarioStats(ctx context.Context, scenarioID uint, from, to time.Time) (*ScenarioStats, error) {
	from, to = from.UTC(), to.UTC()
	if !from.Before(to) {
		return nil, stepcast.Errorf(stepcast.EINVALID, "from (%s) must be before to (%s)", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	if to.Sub(from) > MaxStatsSpan {
		return nil, stepcast.Errorf(stepcast.EINVALID, "the window from %s to %s is longer than %d days",
			from.Format(time.RFC3339), to.Format(time.RFC3339), int(MaxStatsSpan/(24*time.Hour)))
	}
	sc, err := s.Scenario(ctx, scenarioID)
	if err != nil {
		return nil, err
	}
	ch, err := s.Channel(ctx, sc.ChannelID)
	if err != nil {
		return nil, err
	}
	docJSON := sc.Draft
	if sc.Version > 0 {
		v, err := s.ScenarioVersion(ctx, sc.ID, sc.Version)
		if err != nil {
			return nil, err
		}
		docJSON = v.Document
	}
	// Stored documents were validated when saved; decode leniently so a
	// field a later release dropped does not break statistics.
	var doc scenario.Document
	if err := json.Unmarshal([]byte(docJSON), &doc); err != nil {
		return nil, fmt.Errorf("models: document of scenario %d: %w", sc.ID, err)
	}
	loc, err := time.LoadLocation(ch.TimeZone)
	if err != nil || ch.TimeZone == "" {
		loc, _ = time.LoadLocation(scenario.DefaultTimeZone)
	}

	c := &statsRun{db: s.DB.WithContext(ctx), sc: sc, doc: &doc, from: from, to: to, loc: loc,
		out:   &ScenarioStats{ScenarioID: sc.ID, Version: sc.Version, From: from, To: to, TimeZone: loc.String(), Exited: map[string]int64{}},
		nodes: map[string]*NodeStats{}, days: map[string]int{}}
	c.init()
	for _, step := range []func() error{c.enrollments, c.sends, c.failures, c.clicks, c.holds, c.visits, c.conversions} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return c.out, nil
}

// statsRun is one computation of ScenarioStats.
type statsRun struct {
	db       *gorm.DB
	sc       *Scenario
	doc      *scenario.Document
	from, to time.Time
	loc      *time.Location
	out      *ScenarioStats
	nodes    map[string]*NodeStats
	days     map[string]int // date → index in out.Series
	// sendTimes holds each friend's sends in the window, by node.
	sendTimes map[uint]map[string][]time.Time
}

func (c *statsRun) init() {
	c.out.Nodes = make([]NodeStats, len(c.doc.Nodes))
	for i, n := range c.doc.Nodes {
		ns := NodeStats{NodeID: n.ID, Type: n.Type, Held: map[string]int64{}}
		switch n.Type {
		case scenario.NodeBranch, scenario.NodeSplit, scenario.NodeWaitEvent:
			ns.Branches = map[string]int64{}
		}
		c.out.Nodes[i] = ns
	}
	for i := range c.out.Nodes {
		c.nodes[c.out.Nodes[i].NodeID] = &c.out.Nodes[i]
	}
	first := c.from.In(c.loc)
	last := c.to.Add(-time.Nanosecond).In(c.loc)
	lastDate := last.Format(time.DateOnly)
	for i := 0; ; i++ {
		d := time.Date(first.Year(), first.Month(), first.Day()+i, 0, 0, 0, 0, c.loc).Format(time.DateOnly)
		c.days[d] = len(c.out.Series)
		c.out.Series = append(c.out.Series, DayStats{Date: d})
		if d == lastDate {
			break
		}
	}
}

// day returns the series entry of t's day in the channel's time zone.
func (c *statsRun) day(t time.Time) *DayStats {
	i, ok := c.days[t.In(c.loc).Format(time.DateOnly)]
	if !ok {
		return nil
	}
	return &c.out.Series[i]
}

// enrollments counts enrollments started in the window by status and day.
func (c *statsRun) enrollments() error {
	rows, err := c.db.Model(&Enrollment{}).Select("status, exit_reason, started_at").
		Where("scenario_id = ? AND started_at >= ? AND started_at < ?", c.sc.ID, c.from, c.to).Rows()
	if err != nil {
		return dbError(err, "enrollment statistics")
	}
	defer rows.Close()
	for rows.Next() {
		var (
			status  string
			reason  *string
			started time.Time
		)
		if err := rows.Scan(&status, &reason, &started); err != nil {
			return dbError(err, "enrollment statistics")
		}
		c.out.Enrolled++
		switch status {
		case EnrollmentRunning:
			c.out.Running++
		case EnrollmentCompleted:
			c.out.Completed++
		case EnrollmentExited:
			r := "unknown"
			if reason != nil && *reason != "" {
				r = *reason
			}
			c.out.Exited[r]++
		}
		if d := c.day(started); d != nil {
			d.Enrolled++
		}
	}
	return dbError(rows.Err(), "enrollment statistics")
}

// sends counts the steps sent in the window and keeps their times for
// conversions.
func (c *statsRun) sends() error {
	rows, err := c.db.Model(&Delivery{}).Select("node_id, friend_id, sent_at").
		Where("scenario_id = ? AND status = ? AND sent_at >= ? AND sent_at < ?", c.sc.ID, DeliverySent, c.from, c.to).Rows()
	if err != nil {
		return dbError(err, "delivery statistics")
	}
	defer rows.Close()
	c.sendTimes = map[uint]map[string][]time.Time{}
	for rows.Next() {
		var (
			node   string
			friend uint
			at     time.Time
		)
		if err := rows.Scan(&node, &friend, &at); err != nil {
			return dbError(err, "delivery statistics")
		}
		c.out.Sent++
		if n := c.nodes[node]; n != nil {
			n.Sent++
		}
		if d := c.day(at); d != nil {
			d.Sent++
		}
		byNode := c.sendTimes[friend]
		if byNode == nil {
			byNode = map[string][]time.Time{}
			c.sendTimes[friend] = byNode
		}
		byNode[node] = append(byNode[node], at.UTC())
	}
	return dbError(rows.Err(), "delivery statistics")
}

// failures counts the steps whose push failed, by when they were first
// attempted.
func (c *statsRun) failures() error {
	var counts []struct {
		NodeID string
		N      int64
	}
	err := c.db.Model(&Delivery{}).Select("node_id, COUNT(*) AS n").
		Where("scenario_id = ? AND status = ? AND created_at >= ? AND created_at < ?", c.sc.ID, DeliveryFailed, c.from, c.to).
		Group("node_id").Scan(&counts).Error
	if err != nil {
		return dbError(err, "delivery statistics")
	}
	for _, r := range counts {
		c.out.Failed += r.N
		if n := c.nodes[r.NodeID]; n != nil {
			n.Failed = r.N
		}
	}
	return nil
}

// clicks counts distinct friends who clicked a tracked link of the
// scenario: per node, per day and overall. Clickers are enrolled friends,
// which lets the database use the (friend, time) index of events.
func (c *statsRun) clicks() error {
	rows, err := c.db.Model(&FriendEvent{}).Select("node_id, friend_id, at").
		Where("channel_id = ? AND type = ? AND scenario_key = ? AND at >= ? AND at < ?",
			c.sc.ChannelID, scenario.EventClick, c.sc.Key, c.from, c.to).
		Where("friend_id IN (?)", c.db.Model(&Enrollment{}).Select("friend_id").Where("scenario_id = ?", c.sc.ID)).
		Rows()
	if err != nil {
		return dbError(err, "click statistics")
	}
	defer rows.Close()
	all := friendSet{}
	perNode := map[string]friendSet{}
	perDay := map[*DayStats]friendSet{}
	for rows.Next() {
		var (
			node   *string
			friend uint
			at     time.Time
		)
		if err := rows.Scan(&node, &friend, &at); err != nil {
			return dbError(err, "click statistics")
		}
		all.add(friend)
		if node != nil && c.nodes[*node] != nil {
			if perNode[*node] == nil {
				perNode[*node] = friendSet{}
			}
			perNode[*node].add(friend)
		}
		if d := c.day(at); d != nil {
			if perDay[d] == nil {
				perDay[d] = friendSet{}
			}
			perDay[d].add(friend)
		}
	}
	if err := rows.Err(); err != nil {
		return dbError(err, "click statistics")
	}
	c.out.UniqueClicks = int64(len(all))
	for node, set := range perNode {
		c.nodes[node].UniqueClicks = int64(len(set))
	}
	for d, set := range perDay {
		d.Clicks = int64(len(set))
	}
	return nil
}

// holds counts distinct friends whose step was held, per node and reason.
func (c *statsRun) holds() error {
	var held []struct {
		NodeID   string
		Outcome  *string
		FriendID uint
	}
	err := c.db.Model(&StepEvent{}).Distinct("node_id", "outcome", "friend_id").
		Where("scenario_id = ? AND kind = ? AND at >= ? AND at < ?", c.sc.ID, StepHeld, c.from, c.to).
		Scan(&held).Error
	if err != nil {
		return dbError(err, "hold statistics")
	}
	friends := map[string]friendSet{}
	for _, h := range held {
		n := c.nodes[h.NodeID]
		if n == nil {
			continue
		}
		reason := "unknown"
		if h.Outcome != nil && *h.Outcome != "" {
			reason = *h.Outcome
		}
		n.Held[reason]++
		if friends[h.NodeID] == nil {
			friends[h.NodeID] = friendSet{}
		}
		friends[h.NodeID].add(h.FriendID)
	}
	for node, set := range friends {
		c.nodes[node].HeldFriends = int64(len(set))
	}
	return nil
}

// visits counts the paths deciding nodes took.
func (c *statsRun) visits() error {
	var counts []struct {
		NodeID  string
		Outcome *string
		N       int64
	}
	err := c.db.Model(&StepEvent{}).Select("node_id, outcome, COUNT(*) AS n").
		Where("scenario_id = ? AND kind = ? AND at >= ? AND at < ?", c.sc.ID, StepVisit, c.from, c.to).
		Group("node_id, outcome").Scan(&counts).Error
	if err != nil {
		return dbError(err, "branch statistics")
	}
	for _, r := range counts {
		n := c.nodes[r.NodeID]
		if n == nil || n.Branches == nil {
			continue
		}
		outcome := "unknown"
		if r.Outcome != nil && *r.Outcome != "" {
			outcome = *r.Outcome
		}
		n.Branches[outcome] += r.N
	}
	return nil
}

// conversions finds the events that convert a send. The database narrows
// them by channel, type (and name), time and the friends sent a step in the
// window; the conversion's property filters run here, with the same
// matching as the workflow's conditions.
func (c *statsRun) conversions() error {
	conv := c.doc.Conversion
	if conv == nil || conv.Type == "" || len(c.sendTimes) == 0 {
		return nil
	}
	within := scenario.DefaultConversionWindow
	if conv.Within != "" {
		if d, err := time.ParseDuration(conv.Within); err == nil && d > 0 {
			within = d
		}
	}
	sent := c.db.Model(&Delivery{}).Select("friend_id").
		Where("scenario_id = ? AND status = ? AND sent_at >= ? AND sent_at < ?", c.sc.ID, DeliverySent, c.from, c.to)
	q := c.db.Model(&FriendEvent{}).Select("friend_id, type, name, scenario_key, node_id, props, at").
		Where("channel_id = ? AND type = ? AND at > ? AND at < ?", c.sc.ChannelID, conv.Type, c.from, c.to).
		Where("friend_id IN (?)", sent)
	if conv.Name != "" {
		q = q.Where("name = ?", conv.Name)
	}
	rows, err := q.Rows()
	if err != nil {
		return dbError(err, "conversion statistics")
	}
	defer rows.Close()
	all := friendSet{}
	perNode := map[string]friendSet{}
	perDay := map[*DayStats]friendSet{}
	for rows.Next() {
		var (
			friend                 uint
			typ                    string
			name, key, node, props *string
			at                     time.Time
		)
		if err := rows.Scan(&friend, &typ, &name, &key, &node, &props, &at); err != nil {
			return dbError(err, "conversion statistics")
		}
		ev := scenario.Event{Type: typ, Name: deref(name), ScenarioKey: deref(key), Node: deref(node), Props: eventProps(deref(props)), At: at.UTC()}
		if !conv.Matches(&ev, c.sc.Key) {
			continue
		}
		converted := false
		for nodeID, times := range c.sendTimes[friend] {
			if !convertsAny(times, ev.At, within) {
				continue
			}
			converted = true
			if c.nodes[nodeID] != nil {
				if perNode[nodeID] == nil {
					perNode[nodeID] = friendSet{}
				}
				perNode[nodeID].add(friend)
			}
		}
		if !converted {
			continue
		}
		all.add(friend)
		if d := c.day(ev.At); d != nil {
			if perDay[d] == nil {
				perDay[d] = friendSet{}
			}
			perDay[d].add(friend)
		}
	}
	if err := rows.Err(); err != nil {
		return dbError(err, "conversion statistics")
	}
	c.out.Conversions = int64(len(all))
	for node, set := range perNode {
		c.nodes[node].Conversions = int64(len(set))
	}
	for d, set := range perDay {
		d.Conversions = int64(len(set))
	}
	return nil
}

// convertsAny reports whether an event at t comes after one of the sends and
// at most within after it.
func convertsAny(sends []time.Time, t time.Time, within time.Duration) bool {
	for _, s := range sends {
		if t.After(s) && !t.After(s.Add(within)) {
			return true
		}
	}
	return false
}

// eventProps decodes an event's properties as conditions see them: every
// value as a string, numbers as written.
func eventProps(raw string) map[string]string {
	if raw == "" || raw == "{}" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		switch x := v.(type) {
		case string:
			out[k] = x
		case json.Number:
			out[k] = x.String()
		case nil:
		default:
			b, _ := json.Marshal(x)
			out[k] = string(b)
		}
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
