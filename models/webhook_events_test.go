package models_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/models"
)

// The inbox: events are stored once per webhookEventId, read in order
// after a cursor, and marked processed in bulk.
func TestWebhookInbox(t *testing.T) {
	for name, store := range map[string]*models.Store{"postgres": testenv.Postgres(t), "sqlite": testenv.SQLite(t)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Now()
			var evs []models.WebhookEvent
			for i := range 1200 {
				evs = append(evs, models.WebhookEvent{ChannelID: 1, WebhookEventID: fmt.Sprintf("e%04d", i), Type: "follow",
					UserID: fmt.Sprintf("U%d", i), Payload: "{}", ReceivedAt: now, Timestamp: now})
			}
			// Fresh rows each time, as the webhook decodes them (a row with an
			// ID is an update to GORM).
			n, err := store.InsertWebhookEvents(ctx, append([]models.WebhookEvent(nil), evs[:3]...))
			if err != nil || n != 3 {
				t.Fatalf("insert 3 = %d, %v", n, err)
			}
			// A redelivered body and more: only the new ones, in batches.
			if n, err = store.InsertWebhookEvents(ctx, evs); err != nil || n != 1197 {
				t.Fatalf("insert 1200 with 3 known = %d, %v", n, err)
			}

			page, err := store.PendingWebhookEvents(ctx, 0, 10)
			if err != nil || len(page) != 10 || page[0].WebhookEventID != "e0000" || page[9].WebhookEventID != "e0009" {
				t.Fatalf("first page = %d events, %v", len(page), err)
			}
			next, err := store.PendingWebhookEvents(ctx, page[9].ID, 10)
			if err != nil || len(next) != 10 || next[0].WebhookEventID != "e0010" {
				t.Fatalf("page after e0009 = %d events, %v", len(next), err)
			}

			ids := make([]uint, 0, 700)
			all, err := store.PendingWebhookEvents(ctx, 0, 2000)
			if err != nil || len(all) != 1200 {
				t.Fatalf("all = %d, %v", len(all), err)
			}
			for _, e := range all[:700] {
				ids = append(ids, e.ID)
			}
			if err := store.MarkWebhookEventFailed(ctx, ids[0], fmt.Errorf("boom")); err != nil {
				t.Fatal(err)
			}
			if err := store.MarkWebhookEventsProcessed(ctx, ids, now); err != nil {
				t.Fatal(err)
			}
			backlog, err := store.WebhookBacklog(ctx)
			if err != nil || backlog != 500 {
				t.Fatalf("backlog = %d, %v; want 500", backlog, err)
			}
			rest, err := store.PendingWebhookEvents(ctx, 0, 10)
			if err != nil || len(rest) != 10 || rest[0].WebhookEventID != "e0700" {
				t.Fatalf("pending after marking = %d, %v", len(rest), err)
			}
			var first models.WebhookEvent
			if err := store.DB.First(&first, ids[0]).Error; err != nil {
				t.Fatal(err)
			}
			if first.ProcessedAt == nil || first.LastError != "" || first.Attempts != 1 {
				t.Fatalf("event failed once then processed = %+v", first)
			}
		})
	}
}

// Pruning deletes processed events older than the cutoff, a batch at a
// time, and never a pending one however old.
func TestPruneWebhookEvents(t *testing.T) {
	for name, store := range map[string]*models.Store{"postgres": testenv.Postgres(t), "sqlite": testenv.SQLite(t)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Now()
			old, recent := now.Add(-8*24*time.Hour), now.Add(-time.Hour)
			var evs []models.WebhookEvent
			for i := range 10 {
				evs = append(evs, models.WebhookEvent{ChannelID: 1, WebhookEventID: fmt.Sprintf("e%d", i), Type: "follow",
					Payload: "{}", ReceivedAt: old, Timestamp: old})
			}
			if _, err := store.InsertWebhookEvents(ctx, evs); err != nil {
				t.Fatal(err)
			}
			pending, err := store.PendingWebhookEvents(ctx, 0, 10)
			if err != nil || len(pending) != 10 {
				t.Fatalf("pending = %d, %v", len(pending), err)
			}
			ids := func(es []models.WebhookEvent) []uint {
				var out []uint
				for _, e := range es {
					out = append(out, e.ID)
				}
				return out
			}
			// 0-5 processed long ago, 6-7 an hour ago, 8-9 pending.
			if err := store.MarkWebhookEventsProcessed(ctx, ids(pending[:6]), old); err != nil {
				t.Fatal(err)
			}
			if err := store.MarkWebhookEventsProcessed(ctx, ids(pending[6:8]), recent); err != nil {
				t.Fatal(err)
			}
			cutoff := now.Add(-7 * 24 * time.Hour)
			for _, want := range []int64{4, 2, 0} {
				if n, err := store.PruneWebhookEvents(ctx, cutoff, 4); err != nil || n != want {
					t.Fatalf("prune = %d, %v; want %d", n, err, want)
				}
			}
			var left []models.WebhookEvent
			if err := store.DB.Order("id").Find(&left).Error; err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(ids(left)) != fmt.Sprint(ids(pending[6:])) {
				t.Fatalf("left %v, want the recent and the pending %v", ids(left), ids(pending[6:]))
			}
		})
	}
}
