package models

import (
	"context"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// BeginDelivery returns the delivery row for d.RetryKey, creating it as
// "sending" the first time, and counts the attempt. A row that is already
// sent tells the caller not to push again.
func (s *Store) BeginDelivery(ctx context.Context, d *Delivery) (*Delivery, error) {
	var out Delivery
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		d.Status = DeliverySending
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(d).Error; err != nil {
			return err
		}
		if err := tx.Where("retry_key = ?", d.RetryKey).First(&out).Error; err != nil {
			return err
		}
		out.Attempts++
		return tx.Model(&out).Update("attempts", out.Attempts).Error
	})
	if err != nil {
		return nil, dbError(err, fmt.Sprintf("delivery %s", d.RetryKey))
	}
	return &out, nil
}

// FinishDelivery stores the outcome of a push.
func (s *Store) FinishDelivery(ctx context.Context, d *Delivery) error {
	err := s.DB.WithContext(ctx).Model(&Delivery{}).Where("retry_key = ?", d.RetryKey).
		Updates(map[string]any{"status": d.Status, "error": d.Error, "line_request_id": d.LineRequestID, "sent_at": d.SentAt}).Error
	return dbError(err, fmt.Sprintf("delivery %s", d.RetryKey))
}

// DeliveryFilter narrows a delivery list; zero fields do not filter.
type DeliveryFilter struct {
	ChannelID  uint
	ScenarioID uint
	FriendID   uint
	Status     string
}

// Deliveries lists deliveries, newest first.
func (s *Store) Deliveries(ctx context.Context, f DeliveryFilter, p Page) ([]Delivery, error) {
	q := s.DB.WithContext(ctx).Where("channel_id = ?", f.ChannelID)
	if f.ScenarioID != 0 {
		q = q.Where("scenario_id = ?", f.ScenarioID)
	}
	if f.FriendID != 0 {
		q = q.Where("friend_id = ?", f.FriendID)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	var ds []Delivery
	err := p.apply(q.Order("id DESC")).Find(&ds).Error
	return ds, dbError(err, "deliveries")
}
