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
	// databases' limits on bind variables.
	stored := 0
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for i := 0; i < len(events); i += 500 {
			batch := events[i:min(i+500, len(events))]
			res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&batch)
			if res.Error != nil {
				return res.Error
			}
			stored += int(res.RowsAffected)
		}
		return nil
	})
	if err != nil {
		return 0, dbError(err, "webhook events")
	}
	return stored, nil
}

// PendingWebhookEvents returns up to limit unprocessed events in the order
// they arrived.
func (s *Store) PendingWebhookEvents(ctx context.Context, limit int) ([]WebhookEvent, error) {
	var es []WebhookEvent
	err := s.DB.WithContext(ctx).Where("processed_at IS NULL").Order("id").Limit(limit).Find(&es).Error
	return es, dbError(err, "pending webhook events")
}

// MarkWebhookEventProcessed takes an event out of the inbox.
func (s *Store) MarkWebhookEventProcessed(ctx context.Context, id uint, at time.Time) error {
	at = at.UTC()
	err := s.DB.WithContext(ctx).Model(&WebhookEvent{}).Where("id = ?", id).
		Updates(map[string]any{"processed_at": &at, "last_error": ""}).Error
	return dbError(err, fmt.Sprintf("webhook event %d", id))
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

// AcquireLease takes or renews the named lease for holder; it reports
// false while another holder's lease has not expired.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	now := time.Now().UTC()
	db := s.DB.WithContext(ctx)
	if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&Lease{Name: name, Holder: holder, ExpiresAt: now.Add(ttl)}).Error; err != nil {
		return false, dbError(err, "lease")
	}
	res := db.Model(&Lease{}).Where("name = ? AND (holder = ? OR expires_at < ?)", name, holder, now).
		Updates(map[string]any{"holder": holder, "expires_at": now.Add(ttl)})
	if res.Error != nil {
		return false, dbError(res.Error, "lease")
	}
	return res.RowsAffected == 1, nil
}
