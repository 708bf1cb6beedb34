package models_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/models"
)

// StepState reads in one query what Scenario, FriendByID and Channel read
// in three, every column of the friend and the channel included; a missing
// row is ENOTFOUND and named.
func TestStepState(t *testing.T) {
	for name, store := range map[string]*models.Store{"postgres": testenv.Postgres(t), "sqlite": testenv.SQLite(t)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			ch := &models.Channel{Name: "Shop", LineChannelID: "1650000000", Secret: "s", AccessToken: "t", TimeZone: "Asia/Tokyo",
				MonthlyBudget: 10, QuietStart: "22:00", QuietEnd: "08:00", FrequencyCap: 2, RateLimit: 30,
				AddFriendURL: "https://line.me/R/ti/p/@shop", EventsKeyHash: "h", LineQuotaMonth: "2026-01"}
			if err := store.CreateChannel(ctx, ch); err != nil {
				t.Fatal(err)
			}
			// Another channel first, so that a join on the wrong ID shows.
			other := &models.Channel{Name: "Other", LineChannelID: "1650000001", Secret: "s", AccessToken: "o", TimeZone: "UTC"}
			if err := store.CreateChannel(ctx, other); err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 1, 30, 6, 0, 0, 0, time.UTC)
			if _, _, err := store.ApplyFollow(ctx, ch.ID, "U0", at); err != nil {
				t.Fatal(err)
			}
			c, err := store.ApplyStatus(ctx, ch.ID, "U1", at, models.FriendBlocked)
			if err != nil {
				t.Fatal(err)
			}
			if err := store.SetRoute(ctx, c.Friend.ID, "instagram", at); err != nil {
				t.Fatal(err)
			}
			if _, err := store.SetAttributes(ctx, c.Friend.ID, map[string]string{"gender": "f"}); err != nil {
				t.Fatal(err)
			}
			if err := store.SetDisplayName(ctx, c.Friend.ID, "Hanako"); err != nil {
				t.Fatal(err)
			}
			sc := &models.Scenario{ChannelID: ch.ID, Key: "welcome", Name: "Welcome", Draft: "{}"}
			if err := store.CreateScenario(ctx, sc); err != nil {
				t.Fatal(err)
			}

			st, err := store.StepState(ctx, ch.ID, sc.ID, c.Friend.ID)
			if err != nil {
				t.Fatal(err)
			}
			wantScenario, err := store.Scenario(ctx, sc.ID)
			if err != nil {
				t.Fatal(err)
			}
			wantFriend, err := store.FriendByID(ctx, c.Friend.ID)
			if err != nil {
				t.Fatal(err)
			}
			wantChannel, err := store.Channel(ctx, ch.ID)
			if err != nil {
				t.Fatal(err)
			}
			if st.ScenarioStatus != wantScenario.Status {
				t.Errorf("scenario status %q, want %q", st.ScenarioStatus, wantScenario.Status)
			}
			if !reflect.DeepEqual(st.Friend, *wantFriend) {
				t.Errorf("friend\n%+v\nwant\n%+v", st.Friend, *wantFriend)
			}
			if !reflect.DeepEqual(st.Channel, *wantChannel) {
				t.Errorf("channel\n%+v\nwant\n%+v", st.Channel, *wantChannel)
			}
			if wantFriend.AddRouteAt == nil || wantFriend.BlockedAt == nil || wantFriend.DisplayName == "" || wantChannel.LineQuotaMonth == "" {
				t.Fatalf("the fixture leaves columns empty: %+v, %+v", wantFriend, wantChannel)
			}

			for _, tt := range []struct {
				channel, scenario, friend uint
				want                      string
			}{
				{ch.ID, sc.ID, 999, "friend 999 not found"},
				{999, sc.ID, c.Friend.ID, "channel 999 not found"},
				{ch.ID, 999, c.Friend.ID, "scenario 999 not found"},
			} {
				_, err := store.StepState(ctx, tt.channel, tt.scenario, tt.friend)
				if stepcast.ErrorCode(err) != stepcast.ENOTFOUND || err.Error() != tt.want {
					t.Errorf("StepState(%d, %d, %d) = %v, want ENOTFOUND %q", tt.channel, tt.scenario, tt.friend, err, tt.want)
				}
			}
		})
	}
}

// FinishDelivery writes the push's outcome and the delivered event, each
// column of it: on PostgreSQL it is one hand-written statement, so a field
// added to FriendEvent and missing there would be dropped silently.
func TestFinishDelivery(t *testing.T) {
	for name, store := range map[string]*models.Store{"postgres": testenv.Postgres(t), "sqlite": testenv.SQLite(t)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			ch := &models.Channel{Name: "Shop", LineChannelID: "1650000000", Secret: "s", AccessToken: "t", TimeZone: "UTC"}
			if err := store.CreateChannel(ctx, ch); err != nil {
				t.Fatal(err)
			}
			d := &models.Delivery{ChannelID: ch.ID, ScenarioID: 2, FriendID: 3, WorkflowID: "w", RunID: "r", NodeID: "m",
				RetryKey: "0b6f4a5e-8c1d-4c43-9a57-3a2f1a6b0c11", MessageCount: 1}
			d, ok, err := store.BeginDelivery(ctx, d, nil)
			if err != nil || !ok {
				t.Fatalf("begin: %v, %v", ok, err)
			}
			sent := time.Date(2026, 1, 30, 6, 0, 1, 0, time.UTC)
			d.Status, d.Error, d.LineRequestID, d.SentAt, d.BudgetMonth = models.DeliverySent, "e", "req-1", &sent, "2026-01"
			want := models.FriendEvent{ChannelID: ch.ID, FriendID: 3, Type: "delivered", Name: "n", ScenarioKey: "welcome",
				NodeID: "m", Props: `{"k":"v"}`, At: sent, SourceKey: models.SourceKey("delivery:", d.RetryKey)}
			ev := want
			if err := store.FinishDelivery(ctx, d, &ev); err != nil {
				t.Fatal(err)
			}

			var got models.Delivery
			if err := store.DB.Where("retry_key = ?", d.RetryKey).First(&got).Error; err != nil {
				t.Fatal(err)
			}
			if got.Status != models.DeliverySent || got.Error != "e" || got.LineRequestID != "req-1" || got.BudgetMonth != "2026-01" ||
				got.SentAt == nil || !got.SentAt.Equal(sent) || got.UpdatedAt.Before(got.CreatedAt) {
				t.Errorf("delivery %+v", got)
			}
			var events []models.FriendEvent
			if err := store.DB.Where("friend_id = ?", 3).Find(&events).Error; err != nil {
				t.Fatal(err)
			}
			if len(events) != 1 {
				t.Fatalf("%d events, want 1", len(events))
			}
			e := events[0]
			v := reflect.ValueOf(e)
			for i := range v.NumField() {
				if v.Field(i).IsZero() {
					t.Errorf("FriendEvent.%s was not stored: set it in this test and in FinishDelivery", v.Type().Field(i).Name)
				}
			}
			e.ID, e.CreatedAt, e.At = 0, time.Time{}, e.At.UTC()
			if !reflect.DeepEqual(e, want) {
				t.Errorf("event\n%+v\nwant\n%+v", e, want)
			}
		})
	}
}
