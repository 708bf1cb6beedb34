package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm/clause"
)

// ApplyFollow records a follow seen at ts. It reports whether the follow is
// the friend's latest known event; a follow older than the status already
// stored (events applied out of order) leaves the friend as it is.
func (s *Store) ApplyFollow(ctx context.Context, channelID uint, userID string, ts time.Time) (*Friend, bool, error) {
	c, err := s.ApplyStatus(ctx, channelID, userID, ts, FriendFollowing)
	return c.Friend, c.Applied, err
}

// ApplyUnfollow records a block seen at ts, with the same ordering rule as
// ApplyFollow.
func (s *Store) ApplyUnfollow(ctx context.Context, channelID uint, userID string, ts time.Time) (*Friend, bool, error) {
	c, err := s.ApplyStatus(ctx, channelID, userID, ts, FriendBlocked)
	return c.Friend, c.Applied, err
}

// StatusChange is what a follow or a block did to the friend.
type StatusChange struct {
	Friend *Friend
	// Applied: the event is the friend's latest known one and set the
	// status; an older event (applied out of order) changes nothing.
	Applied bool
	// Created: the event made the friend, who therefore has no
	// enrollments, tags or events yet.
	Created bool
}

// ApplyStatus records a follow (FriendFollowing) or a block
// (FriendBlocked) seen at ts. Each step is one statement, atomic on its own,
// so no transaction is needed: a new friend is one INSERT; a known friend
// one UPDATE whose condition (the event is not older than the status) and
// change cannot be split by a concurrent event of the same friend.
func (s *Store) ApplyStatus(ctx context.Context, channelID uint, userID string, ts time.Time, status string) (StatusChange, error) {
	ts = ts.UTC()
	what := fmt.Sprintf("friend %s", userID)
	db := s.DB.WithContext(ctx)
	fresh := Friend{ChannelID: channelID, UserID: userID, Status: status, StatusAt: ts}
	if status == FriendFollowing {
		fresh.FirstFollowedAt, fresh.LastFollowedAt = ts, ts
	} else {
		fresh.BlockedAt = &ts
	}
	res := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&fresh)
	if res.Error != nil {
		return StatusChange{}, dbError(res.Error, what)
	}
	if res.RowsAffected == 1 {
		return StatusChange{Friend: &fresh, Applied: true, Created: true}, nil
	}

	set, args := "status = ?, status_at = ?, updated_at = ?", []any{status, ts, s.DB.NowFunc()}
	if status == FriendFollowing {
		// A friend first seen blocking has no first follow yet.
		set += ", last_followed_at = ?, first_followed_at = CASE WHEN first_followed_at = ? THEN ? ELSE first_followed_at END"
		args = append(args, ts, time.Time{}, ts)
	} else {
		set += ", blocked_at = ?"
		args = append(args, ts)
	}
	args = append(args, channelID, userID, ts)
	var f Friend
	res = db.Raw("UPDATE friends SET "+set+" WHERE channel_id = ? AND user_id = ? AND status_at <= ? RETURNING *", args...).Scan(&f)
	if res.Error != nil {
		return StatusChange{}, dbError(res.Error, what)
	}
	if res.RowsAffected == 1 {
		return StatusChange{Friend: &f, Applied: true}, nil
	}
	// An event older than the friend's status.
	old, err := s.Friend(ctx, channelID, userID)
	if err != nil {
		return StatusChange{}, err
	}
	return StatusChange{Friend: old}, nil
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
