package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// InsertWebhookEvents stores received events in the inbox, skipping any whose
// webhookEventId the channel already has (LINE redelivers). It returns how
// many were new.
func (s *Store) InsertWebhookEvents(ctx context.Context, events []WebhookEvent) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	// In batches: one INSERT of thousands of rows would pass the
	// databases' limits on bind variables. A body that fits one batch (LINE
	// sends a few events at a time) is one statement, atomic without a
	// transaction.
	const batch = 500
	insert := func(db *gorm.DB) (int, error) {
		stored := 0
		for i := 0; i < len(events); i += batch {
			rows := events[i:min(i+batch, len(events))]
			res := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&rows)
			if res.Error != nil {
				return 0, res.Error
			}
			stored += int(res.RowsAffected)
		}
		return stored, nil
	}
	var (
		stored int
		err    error
	)
	if len(events) <= batch {
		stored, err = insert(s.DB.WithContext(ctx))
	} else {
		err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			var terr error
			stored, terr = insert(tx)
			return terr
		})
	}
	if err != nil {
		return 0, dbError(err, "webhook events")
	}
	return stored, nil
}

// PendingWebhookEvents returns up to limit unprocessed events after the
// event afterID, in the order they arrived.
func (s *Store) PendingWebhookEvents(ctx context.Context, afterID uint, limit int) ([]WebhookEvent, error) {
	var es []WebhookEvent
	err := s.DB.WithContext(ctx).Where("processed_at IS NULL AND id > ?", afterID).Order("id").Limit(limit).Find(&es).Error
	return es, dbError(err, "pending webhook events")
}

// MarkWebhookEventsProcessed takes events out of the inbox, in one
// statement per 500.
func (s *Store) MarkWebhookEventsProcessed(ctx context.Context, ids []uint, at time.Time) error {
	at = at.UTC()
	db := s.DB.WithContext(ctx)
	for i := 0; i < len(ids); i += 500 {
		chunk := ids[i:min(i+500, len(ids))]
		err := db.Model(&WebhookEvent{}).Where("id IN ?", chunk).
			Updates(map[string]any{"processed_at": &at, "last_error": ""}).Error
		if err != nil {
			return dbError(err, fmt.Sprintf("%d webhook events", len(chunk)))
		}
	}
	return nil
}

// MarkWebhookEventFailed records a failed attempt; the event stays pending.
func (s *Store) MarkWebhookEventFailed(ctx context.Context, id uint, cause error) error {
	err := s.DB.WithContext(ctx).Model(&WebhookEvent{}).Where("id = ?", id).
		Updates(map[string]any{"attempts": gorm.Expr("attempts + 1"), "last_error": cause.Error()}).Error
	return dbError(err, fmt.Sprintf("webhook event %d", id))
}

// WebhookBacklog counts events received but not yet processed.
func (s *Store) WebhookBacklog(ctx context.Context) (int64, error) {
	var n int64
	err := s.DB.WithContext(ctx).Model(&WebhookEvent{}).Where("processed_at IS NULL").Count(&n).Error
	return n, dbError(err, "webhook backlog")
}

// PruneWebhookEvents deletes up to limit events processed before cutoff and
// returns how many it deleted. Pending events are never deleted.
func (s *Store) PruneWebhookEvents(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	res := s.DB.WithContext(ctx).Exec(`DELETE FROM webhook_events WHERE id IN
(SELECT id FROM webhook_events WHERE processed_at < ? LIMIT ?)`, cutoff.UTC(), limit)
	return res.RowsAffected, dbError(res.Error, "prune webhook events")
}

// AcquireLease takes or renews the named lease for holder; it reports
// false while another holder's lease has not expired. One statement: the
// row is created, or taken over only when it is the holder's own or has
// expired.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	now := time.Now().UTC()
	res := s.DB.WithContext(ctx).Exec(`INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE leases.holder = excluded.holder OR leases.expires_at < ?`, name, holder, now.Add(ttl), now)
	if res.Error != nil {
		return false, dbError(res.Error, "lease")
	}
	return res.RowsAffected == 1, nil
}

// ReleaseLease gives up the named lease if holder has it, so that another
// holder takes it at once instead of when it expires.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	err := s.DB.WithContext(ctx).Exec("DELETE FROM leases WHERE name = ? AND holder = ?", name, holder).Error
	return dbError(err, "lease")
}
