package activities_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stepcast/stepcast/activities"
	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/metrics"
	"github.com/stepcast/stepcast/models"
)

// gateFixture is the activities fixture with a scenario (active unless
// changed) for the gate to look at.
func gateFixture(t *testing.T, f *fixture) (*models.Scenario, func(now time.Time, messages int) activities.GateResult) {
	t.Helper()
	sc := &models.Scenario{ChannelID: f.channel.ID, Key: "welcome", Name: "Welcome", Draft: "{}"}
	require.NoError(t, f.store.CreateScenario(context.Background(), sc))
	require.NoError(t, f.store.DB.Model(sc).Update("status", models.ScenarioActive).Error)
	return sc, func(now time.Time, messages int) activities.GateResult {
		t.Helper()
		return f.gate(t, activities.GateInput{ChannelID: f.channel.ID, ScenarioID: sc.ID, FriendID: f.friend.ID, Messages: messages, Now: now})
	}
}

// TestGateQuietHours: quiet hours are judged on the channel's clock (Tokyo;
// the inputs are in UTC) and hold a step until they end; they may span
// midnight.
func TestGateQuietHours(t *testing.T) {
	tests := []struct {
		name       string
		start, end string
		now        time.Time
		until      time.Time // zero: not held
	}{
		{"23:00 in 22-08", "22:00", "08:00", jst(2026, 3, 2, 23, 0), jst(2026, 3, 3, 8, 0)},
		{"07:00 in 22-08", "22:00", "08:00", jst(2026, 3, 3, 7, 0), jst(2026, 3, 3, 8, 0)},
		{"00:00 in 22-08", "22:00", "08:00", jst(2026, 3, 3, 0, 0), jst(2026, 3, 3, 8, 0)},
		{"22:00 starts them", "22:00", "08:00", jst(2026, 3, 2, 22, 0), jst(2026, 3, 3, 8, 0)},
		{"08:00 ends them", "22:00", "08:00", jst(2026, 3, 3, 8, 0), time.Time{}},
		{"12:00 outside 22-08", "22:00", "08:00", jst(2026, 3, 3, 12, 0), time.Time{}},
		{"23:30 on the last day of the month", "22:00", "08:00", jst(2026, 3, 31, 23, 30), jst(2026, 4, 1, 8, 0)},
		{"12:30 in 12-13", "12:00", "13:00", jst(2026, 3, 3, 12, 30), jst(2026, 3, 3, 13, 0)},
		{"13:00 after 12-13", "12:00", "13:00", jst(2026, 3, 3, 13, 0), time.Time{}},
		{"11:59 before 12-13", "12:00", "13:00", jst(2026, 3, 3, 11, 59), time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			budget := int64(10)
			_, err := f.store.UpdateChannel(context.Background(), f.channel.ID,
				models.ChannelPatch{QuietStart: &tt.start, QuietEnd: &tt.end, MonthlyBudget: &budget})
			require.NoError(t, err)
			_, gate := gateFixture(t, f)

			g := gate(tt.now.UTC(), 1)
			month := models.Month(tt.now.In(tokyo))
			used, err := f.store.Usage(context.Background(), f.channel.ID, month)
			require.NoError(t, err)
			if tt.until.IsZero() {
				require.Empty(t, g.HoldReason)
				require.Equal(t, month, g.BudgetMonth)
				require.Equal(t, int64(1), used, "the step's message is reserved")
				return
			}
			require.Equal(t, activities.HoldQuietHours, g.HoldReason)
			require.True(t, g.HoldUntil.Equal(tt.until), "held until %s, want %s", g.HoldUntil.In(tokyo), tt.until)
			require.Empty(t, g.BudgetMonth)
			require.Zero(t, used, "nothing is reserved for a held step")
		})
	}
}

// TestGateBudget: the gate reserves a step's messages from the month's
// budget (the month of the channel's time zone) and holds the step until the
// next month when they do not fit.
func TestGateBudget(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	budget := int64(3)
	_, err := f.store.UpdateChannel(ctx, f.channel.ID, models.ChannelPatch{MonthlyBudget: &budget})
	require.NoError(t, err)
	_, gate := gateFixture(t, f)

	now := time.Date(2026, 1, 31, 14, 0, 0, 0, time.UTC) // 23:00 JST
	g := gate(now, 2)
	require.Empty(t, g.HoldReason)
	require.Equal(t, "2026-01", g.BudgetMonth)

	g = gate(now, 2)
	require.Equal(t, activities.HoldBudget, g.HoldReason, "2 more would make 4 of 3")
	require.True(t, g.HoldUntil.Equal(jst(2026, 2, 1, 0, 0)), "until February in Tokyo: %s", g.HoldUntil.In(tokyo))

	g = gate(now, 1)
	require.Empty(t, g.HoldReason, "1 more fits")
	used, err := f.store.Usage(ctx, f.channel.ID, "2026-01")
	require.NoError(t, err)
	require.Equal(t, int64(3), used)

	// 16:00 UTC on 31 January is February in Tokyo: a new month's budget.
	g = gate(time.Date(2026, 1, 31, 16, 0, 0, 0, time.UTC), 3)
	require.Empty(t, g.HoldReason)
	require.Equal(t, "2026-02", g.BudgetMonth)

	// LINE's monthly limit holds even with budget left, until it is
	// cleared.
	require.NoError(t, f.store.MarkLineQuotaReached(ctx, f.channel.ID, "2026-02"))
	g = gate(jst(2026, 2, 10, 12, 0), 0)
	require.Equal(t, activities.HoldBudget, g.HoldReason)
	require.True(t, g.HoldUntil.Equal(jst(2026, 3, 1, 0, 0)))
	_, err = f.store.UpdateChannel(ctx, f.channel.ID, models.ChannelPatch{ClearLineQuota: true})
	require.NoError(t, err)
	budget = 0
	_, err = f.store.UpdateChannel(ctx, f.channel.ID, models.ChannelPatch{MonthlyBudget: &budget})
	require.NoError(t, err)
	g = gate(jst(2026, 2, 10, 12, 0), 100)
	require.Empty(t, g.HoldReason, "no budget of our own: always room")
}

// TestGateStatusBlockAndExitAudience: an ended scenario, a blocked friend
// and the exit audience end the enrollment (and reserve nothing); a paused
// scenario holds the step.
func TestGateStatusBlockAndExitAudience(t *testing.T) {
	now := jst(2026, 2, 2, 10, 0)
	ctx := context.Background()

	t.Run("paused", func(t *testing.T) {
		f := newFixture(t)
		sc, gate := gateFixture(t, f)
		_, err := f.store.SetScenarioStatus(ctx, sc.ID, models.ScenarioPaused)
		require.NoError(t, err)
		g := gate(now, 1)
		require.Equal(t, models.ScenarioPaused, g.ScenarioStatus)
		require.Equal(t, activities.HoldPaused, g.HoldReason)
		require.Empty(t, g.BudgetMonth)
	})
	t.Run("ended", func(t *testing.T) {
		f := newFixture(t)
		sc, gate := gateFixture(t, f)
		_, err := f.store.SetScenarioStatus(ctx, sc.ID, models.ScenarioEnded)
		require.NoError(t, err)
		g := gate(now, 1)
		require.Equal(t, models.ScenarioEnded, g.ScenarioStatus)
		require.Empty(t, g.BudgetMonth)
	})
	t.Run("blocked", func(t *testing.T) {
		f := newFixture(t)
		_, gate := gateFixture(t, f)
		_, _, err := f.store.ApplyUnfollow(ctx, f.channel.ID, f.friend.UserID, now.Add(-time.Hour))
		require.NoError(t, err)
		g := gate(now, 1)
		require.True(t, g.Blocked)
		require.Empty(t, g.BudgetMonth)
	})
	t.Run("exit audience", func(t *testing.T) {
		f := newFixture(t)
		sc, _ := gateFixture(t, f)
		a := &models.Audience{ChannelID: f.channel.ID, Key: "buyers", Name: "Buyers", Kind: models.AudienceRule, Rule: `{"tag":"bought"}`}
		require.NoError(t, f.store.CreateAudience(ctx, a))
		in := activities.GateInput{ChannelID: f.channel.ID, ScenarioID: sc.ID, FriendID: f.friend.ID, ExitAudience: "buyers", Messages: 1, Now: now}
		require.False(t, f.gate(t, in).InExitAudience)
		require.NoError(t, f.store.AddTags(ctx, f.friend.ID, []string{"bought"}))
		g := f.gate(t, in)
		require.True(t, g.InExitAudience)
		require.Empty(t, g.BudgetMonth)
	})
}

// TestGateFrequencyCap: with a cap of 1 push per rolling day and a push at
// T, the gate holds a step at T+1h until T+24h and lets it go at T+24h.
//
// BUG (models/delivery_rules.go, PushesSince): on SQLite min(sent_at) is a
// string and cannot be scanned into *time.Time: the gate fails whenever the
// channel has a frequency cap.
//
// BUG (models/delivery_rules.go PushesSince, activities/gate.go Gate): at
// T+24h, the HoldUntil the gate itself gave, PushesSince(now-24h) counts the
// push at T (">="), so the gate holds again with HoldUntil == Now, which the
// workflow turns into a busy loop. See workflows TestFrequencyCap.
func TestGateFrequencyCap(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			store := testenv.SQLite(t)
			if db == "postgres" {
				store = testenv.Postgres(t)
			}
			f := newFixtureOn(t, store)
			one := 1
			_, err := f.store.UpdateChannel(context.Background(), f.channel.ID, models.ChannelPatch{FrequencyCap: &one})
			require.NoError(t, err)
			sc, gate := gateFixture(t, f)

			sent := jst(2026, 3, 3, 10, 0)
			in := f.input("m1", "m1#1", hello)
			in.Now = sent
			res, err := f.send(t, in)
			require.NoError(t, err)
			require.Equal(t, metrics.SendSent, res.Outcome)

			v, err := f.env.ExecuteActivity(f.acts.Gate, activities.GateInput{ChannelID: f.channel.ID, ScenarioID: sc.ID, FriendID: f.friend.ID, Messages: 1, Now: sent.Add(time.Hour)})
			if err != nil {
				_, _, perr := f.store.PushesSince(context.Background(), f.friend.ID, sent.Add(-time.Hour))
				t.Fatalf("BUG (models/delivery_rules.go PushesSince): the gate of a capped channel fails on %s: %v (PushesSince: %v)", db, err, perr)
			}
			var g activities.GateResult
			require.NoError(t, v.Get(&g))
			require.Equal(t, activities.HoldFrequencyCap, g.HoldReason)
			require.True(t, g.HoldUntil.Equal(sent.Add(24*time.Hour)), "held until %s", g.HoldUntil.In(tokyo))

			g = gate(sent.Add(24*time.Hour), 1)
			if g.HoldReason != "" {
				t.Fatalf("BUG (models/delivery_rules.go PushesSince, activities/gate.go Gate): at %s, the time the gate said to ask again, "+
					"it holds again (%q) until %s: not after now, so the workflow asks again at once, for ever",
					sent.Add(24*time.Hour).In(tokyo), g.HoldReason, g.HoldUntil.In(tokyo))
			}
		})
	}
}
