package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// LinePushRateLimit is LINE's push limit per channel, requests a second.
const LinePushRateLimit = 2000

// Month names a budget month.
func Month(t time.Time) string { return t.Format("2006-01") }

// ReserveBudget takes n messages from the channel's budget for month. It
// reports false, taking nothing, when that would go over the budget. A
// channel without a budget always has room.
func (s *Store) ReserveBudget(ctx context.Context, ch *Channel, month string, n int64) (bool, error) {
	if ch.MonthlyBudget <= 0 {
		return true, nil
	}
	ok := false
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		ok, err = reserveBudget(tx, ch, month, n)
		return err
	})
	return ok, dbError(err, fmt.Sprintf("budget of channel %d", ch.ID))
}

// reserveBudget takes n messages from the budget within tx: one conditional
// update, so concurrent reservations cannot both take the last messages.
func reserveBudget(tx *gorm.DB, ch *Channel, month string, n int64) (bool, error) {
	row := ChannelUsage{ChannelID: ch.ID, Month: month}
	if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&row).Error; err != nil {
		return false, err
	}
	res := tx.Model(&ChannelUsage{}).
		Where("channel_id = ? AND month = ? AND used + ? <= ?", ch.ID, month, n, ch.MonthlyBudget).
		Update("used", gorm.Expr("used + ?", n))
	return res.RowsAffected == 1, res.Error
}

// ReleaseBudget gives back a reservation whose push LINE refused.
func (s *Store) ReleaseBudget(ctx context.Context, channelID uint, month string, n int64) error {
	err := s.DB.WithContext(ctx).Model(&ChannelUsage{}).
		Where("channel_id = ? AND month = ? AND used >= ?", channelID, month, n).
		Update("used", gorm.Expr("used - ?", n)).Error
	return dbError(err, fmt.Sprintf("budget of channel %d", channelID))
}

// Usage returns the messages used in month.
func (s *Store) Usage(ctx context.Context, channelID uint, month string) (int64, error) {
	var u ChannelUsage
	err := s.DB.WithContext(ctx).Where("channel_id = ? AND month = ?", channelID, month).Limit(1).Find(&u).Error
	return u.Used, dbError(err, "usage")
}

// PushesSince counts a friend's deliveries sent after t (a rolling window
// (t, now]) and returns the oldest one's time.
func (s *Store) PushesSince(ctx context.Context, friendID uint, t time.Time) (int64, time.Time, error) {
	q := s.DB.WithContext(ctx).Model(&Delivery{}).Where("friend_id = ? AND status = ? AND sent_at > ?", friendID, DeliverySent, t.UTC())
	var n int64
	if err := q.Count(&n).Error; err != nil {
		return 0, time.Time{}, dbError(err, "recent deliveries")
	}
	if n == 0 {
		return 0, time.Time{}, nil
	}
	var oldest Delivery
	err := s.DB.WithContext(ctx).Where("friend_id = ? AND status = ? AND sent_at > ?", friendID, DeliverySent, t.UTC()).
		Order("sent_at").Limit(1).Find(&oldest).Error
	if err != nil || oldest.SentAt == nil {
		return 0, time.Time{}, dbError(err, "recent deliveries")
	}
	return n, *oldest.SentAt, nil
}

// TakeRateTokens counts n pushes in the channel's second if they fit in
// its limit, and reports whether they did. One conditional upsert, so
// concurrent takers, in any process, cannot take more than the limit
// between them; n above the limit never fits.
func (s *Store) TakeRateTokens(ctx context.Context, channelID uint, second int64, limit, n int) (bool, error) {
	if n > limit {
		return false, nil
	}
	row := RateWindow{ChannelID: channelID, Second: second, Count: n}
	res := s.DB.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "channel_id"}, {Name: "second"}},
		DoUpdates: clause.Assignments(map[string]any{"count": gorm.Expr("rate_windows.count + ?", n)}),
		Where:     clause.Where{Exprs: []clause.Expression{clause.Expr{SQL: "rate_windows.count + ? <= ?", Vars: []any{n, limit}}}},
	}).Create(&row)
	if res.Error != nil {
		return false, dbError(res.Error, "rate window")
	}
	return res.RowsAffected == 1, nil
}

// PruneRateWindows deletes windows older than before.
func (s *Store) PruneRateWindows(ctx context.Context, before int64) error {
	return dbError(s.DB.WithContext(ctx).Where("second < ?", before).Delete(&RateWindow{}).Error, "rate windows")
}

// MarkLineQuotaReached records that LINE refused a push for the channel's
// monthly limit in month.
func (s *Store) MarkLineQuotaReached(ctx context.Context, channelID uint, month string) error {
	err := s.DB.WithContext(ctx).Model(&Channel{}).Where("id = ?", channelID).Update("line_quota_month", month).Error
	return dbError(err, fmt.Sprintf("channel %d", channelID))
}

// ChannelPatch changes a channel's delivery settings; nil fields stay.
type ChannelPatch struct {
	Name          *string
	AccessToken   *string
	AddFriendURL  *string
	MonthlyBudget *int64
	QuietStart    *string
	QuietEnd      *string
	FrequencyCap  *int
	RateLimit     *int
	// ClearLineQuota forgets LINE's monthly-limit answer (the plan was
	// upgraded).
	ClearLineQuota bool
}

// UpdateChannel applies a patch.
func (s *Store) UpdateChannel(ctx context.Context, id uint, p ChannelPatch) (*Channel, error) {
	u := map[string]any{}
	set := func(col string, v any, ok bool) {
		if ok {
			u[col] = v
		}
	}
	if p.Name != nil {
		set("name", *p.Name, true)
	}
	if p.AccessToken != nil {
		set("access_token", *p.AccessToken, true)
	}
	if p.AddFriendURL != nil {
		set("add_friend_url", *p.AddFriendURL, true)
	}
	if p.MonthlyBudget != nil {
		set("monthly_budget", *p.MonthlyBudget, true)
	}
	if p.QuietStart != nil {
		set("quiet_start", *p.QuietStart, true)
	}
	if p.QuietEnd != nil {
		set("quiet_end", *p.QuietEnd, true)
	}
	if p.FrequencyCap != nil {
		set("frequency_cap", *p.FrequencyCap, true)
	}
	if p.RateLimit != nil {
		set("rate_limit", *p.RateLimit, true)
	}
	set("line_quota_month", "", p.ClearLineQuota)
	if len(u) > 0 {
		if err := s.DB.WithContext(ctx).Model(&Channel{}).Where("id = ?", id).Updates(u).Error; err != nil {
			return nil, dbError(err, fmt.Sprintf("channel %d", id))
		}
	}
	return s.Channel(ctx, id)
}

// RunningEnrollmentsOfChannel lists a page of the channel's running
// enrollments.
func (s *Store) RunningEnrollmentsOfChannel(ctx context.Context, channelID uint, p Page) ([]Enrollment, error) {
	var es []Enrollment
	err := p.apply(s.DB.WithContext(ctx).Where("channel_id = ? AND status = ?", channelID, EnrollmentRunning).Order("id")).Find(&es).Error
	return es, dbError(err, "enrollments")
}

// RecordStepEvent stores a fact for statistics.
func (s *Store) RecordStepEvent(ctx context.Context, e *StepEvent) error {
	e.At = e.At.UTC()
	return dbError(s.DB.WithContext(ctx).Create(e).Error, "step event")
}
