package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ApplyFollow records a follow seen at ts. It reports whether the follow is
// the friend's latest known event; a follow older than the status already
// stored (events applied out of order) leaves the friend as it is.
func (s *Store) ApplyFollow(ctx context.Context, channelID uint, userID string, ts time.Time) (*Friend, bool, error) {
	return s.applyStatus(ctx, channelID, userID, ts, FriendFollowing)
}

// ApplyUnfollow records a block seen at ts, with the same ordering rule as
// ApplyFollow.
func (s *Store) ApplyUnfollow(ctx context.Context, channelID uint, userID string, ts time.Time) (*Friend, bool, error) {
	return s.applyStatus(ctx, channelID, userID, ts, FriendBlocked)
}

func (s *Store) applyStatus(ctx context.Context, channelID uint, userID string, ts time.Time, status string) (*Friend, bool, error) {
	ts = ts.UTC()
	var (
		f       Friend
		applied bool
	)
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		fresh := Friend{ChannelID: channelID, UserID: userID, Status: status, StatusAt: ts}
		if status == FriendFollowing {
			fresh.FirstFollowedAt, fresh.LastFollowedAt = ts, ts
		} else {
			fresh.BlockedAt = &ts
		}
		res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&fresh)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 1 {
			f, applied = fresh, true
			return nil
		}
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
			Where("channel_id = ? AND user_id = ?", channelID, userID).First(&f).Error; err != nil {
			return err
		}
		if ts.Before(f.StatusAt) {
			return nil
		}
		applied = true
		f.Status, f.StatusAt = status, ts
		if status == FriendFollowing {
			if f.FirstFollowedAt.IsZero() {
				f.FirstFollowedAt = ts
			}
			f.LastFollowedAt = ts
		} else {
			f.BlockedAt = &ts
		}
		return tx.Save(&f).Error
	})
	if err != nil {
		return nil, false, dbError(err, fmt.Sprintf("friend %s", userID))
	}
	return &f, applied, nil
}

// Friend returns a friend by its channel and LINE user ID.
func (s *Store) Friend(ctx context.Context, channelID uint, userID string) (*Friend, error) {
	var f Friend
	err := s.DB.WithContext(ctx).Where("channel_id = ? AND user_id = ?", channelID, userID).First(&f).Error
	if err != nil {
		return nil, dbError(err, fmt.Sprintf("friend %s", userID))
	}
	return &f, nil
}

// FriendByID returns a friend by its row ID.
func (s *Store) FriendByID(ctx context.Context, id uint) (*Friend, error) {
	var f Friend
	if err := s.DB.WithContext(ctx).First(&f, id).Error; err != nil {
		return nil, dbError(err, fmt.Sprintf("friend %d", id))
	}
	return &f, nil
}

// SetDisplayName stores a display name fetched from LINE's profile API.
func (s *Store) SetDisplayName(ctx context.Context, friendID uint, name string) error {
	err := s.DB.WithContext(ctx).Model(&Friend{}).Where("id = ?", friendID).Update("display_name", name).Error
	return dbError(err, fmt.Sprintf("friend %d", friendID))
}

// FriendFilter narrows a friend list.
type FriendFilter struct {
	ChannelID uint
	Status    string
}

// Friends lists a channel's friends, newest first.
func (s *Store) Friends(ctx context.Context, f FriendFilter, p Page) ([]Friend, error) {
	q := s.DB.WithContext(ctx).Where("channel_id = ?", f.ChannelID)
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	var fs []Friend
	err := p.apply(q.Order("id DESC")).Find(&fs).Error
	return fs, dbError(err, "friends")
}

// FollowingFriendIDs returns up to limit IDs of the channel's following
// friends after afterID, in ID order.
func (s *Store) FollowingFriendIDs(ctx context.Context, channelID, afterID uint, limit int) ([]uint, error) {
	var ids []uint
	err := s.DB.WithContext(ctx).Model(&Friend{}).Where("channel_id = ? AND status = ? AND id > ?", channelID, FriendFollowing, afterID).
		Order("id").Limit(limit).Pluck("id", &ids).Error
	return ids, dbError(err, "friends")
}
