package apiserver

import (
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/models"
)

// DefaultStatsWindow is the window of statistics when the request names no
// from.
const DefaultStatsWindow = 30 * 24 * time.Hour

// ScenarioStats are a scenario's statistics over [from, to); see
// models.ScenarioStats for what each number counts.
type ScenarioStats struct {
	ScenarioID uint `json:"scenarioId"`
	// Version is the published version whose nodes are listed; 0 is the
	// draft of a scenario never published.
	Version  int       `json:"version"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	TimeZone string    `json:"timeZone"`

	Enrolled  int64            `json:"enrolled"`
	Running   int64            `json:"running"`
	Completed int64            `json:"completed"`
	Exited    map[string]int64 `json:"exited"`

	Sent         int64 `json:"sent"`
	Failed       int64 `json:"failed"`
	UniqueClicks int64 `json:"uniqueClicks"`
	Conversions  int64 `json:"conversions"`

	Nodes  []NodeStats `json:"nodes"`
	Series []DayStats  `json:"series"`
}

// NodeStats are the statistics of one node.
type NodeStats struct {
	NodeID       string           `json:"nodeId"`
	Type         string           `json:"type"`
	Sent         int64            `json:"sent"`
	Failed       int64            `json:"failed"`
	HeldFriends  int64            `json:"heldFriends"`
	Held         map[string]int64 `json:"held"`
	UniqueClicks int64            `json:"uniqueClicks"`
	Conversions  int64            `json:"conversions"`
	// Branches is set for branch, split and wait_event nodes only.
	Branches map[string]int64 `json:"branches,omitzero"`
}

// DayStats is one day of the series, in the channel's time zone.
type DayStats struct {
	Date        string `json:"date"`
	Enrolled    int64  `json:"enrolled"`
	Sent        int64  `json:"sent"`
	Clicks      int64  `json:"clicks"`
	Conversions int64  `json:"conversions"`
}

func toScenarioStats(st *models.ScenarioStats) ScenarioStats {
	out := ScenarioStats{ScenarioID: st.ScenarioID, Version: st.Version, From: st.From, To: st.To, TimeZone: st.TimeZone,
		Enrolled: st.Enrolled, Running: st.Running, Completed: st.Completed, Exited: st.Exited,
		Sent: st.Sent, Failed: st.Failed, UniqueClicks: st.UniqueClicks, Conversions: st.Conversions,
		Nodes: make([]NodeStats, len(st.Nodes)), Series: make([]DayStats, len(st.Series))}
	for i, n := range st.Nodes {
		out.Nodes[i] = NodeStats{NodeID: n.NodeID, Type: n.Type, Sent: n.Sent, Failed: n.Failed, HeldFriends: n.HeldFriends,
			Held: n.Held, UniqueClicks: n.UniqueClicks, Conversions: n.Conversions, Branches: n.Branches}
	}
	for i, d := range st.Series {
		out.Series[i] = DayStats{Date: d.Date, Enrolled: d.Enrolled, Sent: d.Sent, Clicks: d.Clicks, Conversions: d.Conversions}
	}
	return out
}

// scenarioStats answers a scenario's statistics over ?from=&to= (RFC 3339;
// by default the last 30 days up to now).
func (s *Server) scenarioStats(c *gin.Context) {
	sc, err := s.scenario(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	from, to, err := statsWindow(c, time.Now())
	if err != nil {
		s.fail(c, err)
		return
	}
	st, err := s.store.ScenarioStats(c.Request.Context(), sc.ID, from, to)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, toScenarioStats(st))
}

// statsWindow reads from and to: to defaults to now, from to 30 days
// before to.
func statsWindow(c *gin.Context, now time.Time) (from, to time.Time, err error) {
	to = now.UTC()
	if to, err = timeParam(c, "to", to); err != nil {
		return from, to, err
	}
	if from, err = timeParam(c, "from", to.Add(-DefaultStatsWindow)); err != nil {
		return from, to, err
	}
	if !from.Before(to) {
		return from, to, stepcast.Errorf(stepcast.EINVALID, "query parameter from (%s) must be before to (%s)",
			from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	if to.Sub(from) > models.MaxStatsSpan {
		return from, to, stepcast.Errorf(stepcast.EINVALID, "query parameter from (%s) is more than %d days before to (%s)",
			from.Format(time.RFC3339), int(models.MaxStatsSpan/(24*time.Hour)), to.Format(time.RFC3339))
	}
	return from, to, nil
}

// timeParam reads an RFC 3339 query parameter; absent or empty is def.
func timeParam(c *gin.Context, name string, def time.Time) (time.Time, error) {
	v := c.Query(name)
	if v == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil && strings.Contains(v, " ") {
		// An unescaped "+09:00" arrives as " 09:00".
		t, err = time.Parse(time.RFC3339, strings.ReplaceAll(v, " ", "+"))
	}
	if err != nil {
		return def, stepcast.Errorf(stepcast.EINVALID, "query parameter %s must be an RFC 3339 time such as 2026-11-23T00:00:00+09:00, not %q", name, v)
	}
	return t.UTC(), nil
}
