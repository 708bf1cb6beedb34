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
