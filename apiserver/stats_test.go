package apiserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepcast/stepcast/apiserver"
	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/metrics"
	"github.com/stepcast/stepcast/models"
)

const statsTestDocument = `{
  "name": "Cart",
  "start": {"type": "follow"},
  "conversion": {"type": "purchase", "props": [{"key": "amount", "op": "gte", "value": "1000"}], "within": "24h"},
  "nodes": [
    {"id": "hello", "type": "message", "message": {"messages": [{"type": "text", "text": "Hi"}]}, "next": "we"},
    {"id": "we", "type": "wait_event", "waitEvent": {"event": {"type": "purchase"}, "timeout": {"after": "48h"}, "onEvent": "x", "onTimeout": "x"}},
    {"id": "x", "type": "exit"}
  ]
}`

// statsServer seeds a published scenario with one friend's journey at the
// given times and returns the handler and the scenario.
func statsServer(t *testing.T, base time.Time) (http.Handler, *models.Scenario) {
	t.Helper()
	ctx := context.Background()
	store := testenv.Postgres(t)
	ch := models.Channel{Name: "shop", LineChannelID: "2000000002", Secret: "s", AccessToken: "a", TimeZone: "Asia/Tokyo"}
	require.NoError(t, store.CreateChannel(ctx, &ch))
	sc := models.Scenario{ChannelID: ch.ID, Key: "cart", Name: "Cart", Draft: statsTestDocument}
	require.NoError(t, store.CreateScenario(ctx, &sc))
	_, err := store.Publish(ctx, sc.ID, statsTestDocument, base.Add(-time.Hour))
	require.NoError(t, err)
	f := models.Friend{ChannelID: ch.ID, UserID: testenv.UserID(), Status: models.FriendFollowing}
	require.NoError(t, store.DB.Create(&f).Error)
	e := models.Enrollment{ChannelID: ch.ID, ScenarioID: sc.ID, ScenarioVersion: 1, FriendID: f.ID, WorkflowID: "wf", RunID: "r",
		Status: models.EnrollmentExited, ExitReason: "blocked", StartedAt: base}
	require.NoError(t, store.DB.Create(&e).Error)
	sent := base.Add(time.Minute)
	require.NoError(t, store.DB.Create(&models.Delivery{ChannelID: ch.ID, ScenarioID: sc.ID, FriendID: f.ID, WorkflowID: "wf", RunID: "r",
		NodeID: "hello", RetryKey: "k1", Status: models.DeliverySent, MessageCount: 1, Attempts: 1, SentAt: &sent}).Error)
	for _, ev := range []models.FriendEvent{
		{Type: "click", ScenarioKey: "cart", NodeID: "hello", At: base.Add(2 * time.Minute)},
		{Type: "purchase", Props: `{"amount":"1200"}`, At: base.Add(40 * time.Minute)}, // 00:10 JST the next day
	} {
		ev.ChannelID, ev.FriendID = ch.ID, f.ID
		_, err := store.RecordEvent(ctx, &ev)
		require.NoError(t, err)
	}
	require.NoError(t, store.RecordStepEvent(ctx, &models.StepEvent{ChannelID: ch.ID, ScenarioID: sc.ID, NodeID: "hello", FriendID: f.ID,
		Kind: models.StepHeld, Outcome: "quiet hours", At: base}))
	require.NoError(t, store.RecordStepEvent(ctx, &models.StepEvent{ChannelID: ch.ID, ScenarioID: sc.ID, NodeID: "we", FriendID: f.ID,
		Kind: models.StepVisit, Outcome: "event", At: base.Add(3 * time.Minute)}))

	srv := apiserver.New(apiserver.Config{AdminToken: "t"}, apiserver.Deps{Store: store, Metrics: metrics.New(), Log: testenv.Logger()})
	return srv.Handler(), &sc
}

func getStats(h http.Handler, path, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestScenarioStatsAPI(t *testing.T) {
	base := time.Date(2026, 11, 22, 14, 30, 0, 0, time.UTC) // 23:30 JST
	h, sc := statsServer(t, base)
	q := url.Values{"from": {"2026-11-22T00:00:00+09:00"}, "to": {"2026-11-24T00:00:00+09:00"}}
	rec := getStats(h, fmt.Sprintf("/api/v1/scenarios/%d/stats?%s", sc.ID, q.Encode()), "t")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

	// The exact JSON: camelCase names, maps by reason and outcome,
	// branches only on deciding nodes, one series entry per JST day.
	want := fmt.Sprintf(`{
	  "scenarioId": %d, "version": 1, "from": "2026-11-21T15:00:00Z", "to": "2026-11-23T15:00:00Z", "timeZone": "Asia/Tokyo",
	  "enrolled": 1, "running": 0, "completed": 0, "exited": {"blocked": 1},
	  "sent": 1, "failed": 0, "uniqueClicks": 1, "conversions": 1,
	  "nodes": [
	    {"nodeId": "hello", "type": "message", "sent": 1, "failed": 0, "heldFriends": 1, "held": {"quiet hours": 1}, "uniqueClicks": 1, "conversions": 1},
	    {"nodeId": "we", "type": "wait_event", "sent": 0, "failed": 0, "heldFriends": 0, "held": {}, "uniqueClicks": 0, "conversions": 0, "branches": {"event": 1}},
	    {"nodeId": "x", "type": "exit", "sent": 0, "failed": 0, "heldFriends": 0, "held": {}, "uniqueClicks": 0, "conversions": 0}
	  ],
	  "series": [
	    {"date": "2026-11-22", "enrolled": 1, "sent": 1, "clicks": 1, "conversions": 0},
	    {"date": "2026-11-23", "enrolled": 0, "sent": 0, "clicks": 0, "conversions": 1}
	  ]
	}`, sc.ID)
	assert.JSONEq(t, want, rec.Body.String())

	// The answer is what openapi.yaml says: valid against ScenarioStats,
	// with no key the schema does not declare.
	doc := loadOpenAPI(t)
	schema := doc.Components.Schemas["ScenarioStats"]
	require.NotNil(t, schema, "schema ScenarioStats is missing")
	var decoded any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &decoded))
	assert.NoError(t, schema.Value.VisitJSON(decoded))
	checkKeys(t, "ScenarioStats", schema.Value, decoded)

	// An unescaped "+09:00" (a space after URL decoding) is understood.
	rec = getStats(h, fmt.Sprintf("/api/v1/scenarios/%d/stats?from=2026-11-22T00:00:00+09:00&to=2026-11-24T00:00:00+09:00", sc.ID), "t")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.JSONEq(t, want, rec.Body.String())
}

func TestScenarioStatsAPIDefaultWindow(t *testing.T) {
	base := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	h, sc := statsServer(t, base)
	before := time.Now().UTC()
	rec := getStats(h, fmt.Sprintf("/api/v1/scenarios/%d/stats", sc.ID), "t")
	after := time.Now().UTC()
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var got apiserver.ScenarioStats
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))

	assert.False(t, got.To.Before(before.Truncate(time.Second)) || got.To.After(after), "to %s is not now", got.To)
	assert.Equal(t, 30*24*time.Hour, got.To.Sub(got.From))
	assert.Equal(t, int64(1), got.Enrolled)
	assert.Equal(t, int64(1), got.Sent)
	assert.Equal(t, int64(1), got.Conversions)
	jst, err := time.LoadLocation("Asia/Tokyo")
	require.NoError(t, err)
	require.NotEmpty(t, got.Series)
	assert.Equal(t, got.From.In(jst).Format(time.DateOnly), got.Series[0].Date)
	assert.Equal(t, got.To.Add(-time.Nanosecond).In(jst).Format(time.DateOnly), got.Series[len(got.Series)-1].Date)
	var enrolled int64
	for _, d := range got.Series {
		enrolled += d.Enrolled
	}
	assert.Equal(t, int64(1), enrolled)

	// Only to: from is 30 days before it.
	rec = getStats(h, fmt.Sprintf("/api/v1/scenarios/%d/stats?to=2026-11-24T00:00:00Z", sc.ID), "t")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	assert.Equal(t, "2026-10-25T00:00:00Z", got.From.Format(time.RFC3339))
}

func TestScenarioStatsAPIErrors(t *testing.T) {
	h, sc := statsServer(t, time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	path := fmt.Sprintf("/api/v1/scenarios/%d/stats", sc.ID)

	for name, tc := range map[string]struct {
		query, param string
	}{
		"bad from":      {"from=yesterday", "from"},
		"bad to":        {"to=2026-11-24", "to"},
		"from equal to": {"from=2026-11-24T00:00:00Z&to=2026-11-24T00:00:00Z", "from"},
		"from after to": {"from=2026-11-25T00:00:00Z&to=2026-11-24T00:00:00Z", "from"},
		"over 400 days": {"from=2025-10-19T23:59:59Z&to=2026-11-24T00:00:00Z", "from"},
	} {
		t.Run(name, func(t *testing.T) {
			rec := getStats(h, path+"?"+tc.query, "t")
			require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
			var body apiserver.ErrorBody
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			assert.Equal(t, "invalid", body.Error.Code)
			assert.True(t, strings.HasPrefix(body.Error.Message, "query parameter "+tc.param+" "), "message %q does not name %s", body.Error.Message, tc.param)
		})
	}
	// Exactly 400 days is allowed.
	rec := getStats(h, path+"?from=2025-10-20T00:00:00Z&to=2026-11-24T00:00:00Z", "t")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

	for _, p := range []string{"/api/v1/scenarios/999999/stats", "/api/v1/scenarios/abc/stats"} {
		rec := getStats(h, p, "t")
		require.Equal(t, http.StatusNotFound, rec.Code, rec.Body.String())
		assert.Contains(t, rec.Body.String(), `"code":"not_found"`)
	}

	for _, token := range []string{"", "wrong"} {
		rec := getStats(h, path, token)
		require.Equal(t, http.StatusUnauthorized, rec.Code, rec.Body.String())
		assert.Contains(t, rec.Body.String(), `"code":"unauthorized"`)
	}
}
