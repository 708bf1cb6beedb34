package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/models"
)

// An event with a source key is stored once per channel: recording it
// again gives back the stored event; the same key on a different event
// is a conflict; events without a key are each stored.
func TestRecordEventOnceBySourceKey(t *testing.T) {
	for name, store := range map[string]*models.Store{"postgres": testenv.Postgres(t), "sqlite": testenv.SQLite(t)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
			record := func(channel, friend uint, typ, key string, at time.Time) (*models.FriendEvent, bool, error) {
				t.Helper()
				e := &models.FriendEvent{ChannelID: channel, FriendID: friend, Type: typ, Name: "survey=yes", At: at,
					SourceKey: models.SourceKey(models.SourceLINE, key)}
				isNew, err := store.RecordEvent(ctx, e)
				return e, isNew, err
			}
			count := func() int64 {
				t.Helper()
				var n int64
				if err := store.DB.Model(&models.FriendEvent{}).Count(&n).Error; err != nil {
					t.Fatal(err)
				}
				return n
			}

			first, isNew, err := record(1, 7, "postback", "wh-1", at)
			if err != nil || !isNew || first.ID == 0 {
				t.Fatalf("first = %+v, new %v, %v", first, isNew, err)
			}
			// Applied again, later: the stored event, its time kept.
			again, isNew, err := record(1, 7, "postback", "wh-1", at.Add(time.Minute))
			if err != nil || isNew || again.ID != first.ID || !again.At.Equal(at) {
				t.Fatalf("again = %+v, new %v, %v; want event %d at %s, not new", again, isNew, err, first.ID, at)
			}
			// The same key in another channel is another event.
			if other, isNew, err := record(2, 8, "postback", "wh-1", at); err != nil || !isNew || other.ID == first.ID {
				t.Fatalf("other channel = %+v, new %v, %v", other, isNew, err)
			}
			// The same key on a different event.
			if _, _, err := record(1, 7, "purchase", "wh-1", at); stepcast.ErrorCode(err) != stepcast.ECONFLICT {
				t.Fatalf("a different event with a used key: %v, want a conflict", err)
			}
			if _, _, err := record(1, 9, "postback", "wh-1", at); stepcast.ErrorCode(err) != stepcast.ECONFLICT {
				t.Fatalf("another friend's event with a used key: %v, want a conflict", err)
			}
			// Events without a key (clicks) are never merged.
			for range 2 {
				if _, isNew, err := record(1, 7, "click", "", at); err != nil || !isNew {
					t.Fatalf("click: new %v, %v", isNew, err)
				}
			}
			if n := count(); n != 4 {
				t.Fatalf("%d events stored, want 4", n)
			}
		})
	}
}
