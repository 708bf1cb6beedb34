package models

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/stepcast/stepcast"
)

// AttributeMap decodes a friend's attributes.
func (f *Friend) AttributeMap() map[string]string {
	m := map[string]string{}
	if f.Attributes != "" {
		_ = json.Unmarshal([]byte(f.Attributes), &m)
	}
	return m
}

// SetAttributes merges attrs into the friend's attributes; an empty value
// removes the key.
func (s *Store) SetAttributes(ctx context.Context, friendID uint, attrs map[string]string) (*Friend, error) {
	f, err := s.FriendByID(ctx, friendID)
	if err != nil {
		return nil, err
	}
	m := f.AttributeMap()
	for k, v := range attrs {
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	f.Attributes = string(b)
	err = s.DB.WithContext(ctx).Model(&Friend{}).Where("id = ?", friendID).Update("attributes", f.Attributes).Error
	return f, dbError(err, fmt.Sprintf("friend %d", friendID))
}

// SetRoute records the friend's add route.
func (s *Store) SetRoute(ctx context.Context, friendID uint, route string, at time.Time) error {
	at = at.UTC()
	err := s.DB.WithContext(ctx).Model(&Friend{}).Where("id = ?", friendID).
		Updates(map[string]any{"add_route": route, "add_route_at": &at}).Error
	return dbError(err, fmt.Sprintf("friend %d", friendID))
}

// AddTags puts tags on a friend, defining them on the friend's channel;
// tags it already has stay as they are.
func (s *Store) AddTags(ctx context.Context, friendID uint, tags []string) error {
	if len(tags) == 0 {
		return nil
	}
	f, err := s.FriendByID(ctx, friendID)
	if err != nil {
		return err
	}
	if err := s.DefineTags(ctx, f.ChannelID, tags); err != nil {
		return err
	}
	rows := make([]FriendTag, len(tags))
	for i, t := range tags {
		rows[i] = FriendTag{FriendID: friendID, Tag: t}
	}
	err = s.DB.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&rows).Error
	return dbError(err, fmt.Sprintf("tags of friend %d", friendID))
}

// DefineTags adds tags to the channel's list.
func (s *Store) DefineTags(ctx context.Context, channelID uint, tags []string) error {
	if len(tags) == 0 {
		return nil
	}
	rows := make([]ChannelTag, len(tags))
	for i, t := range tags {
		rows[i] = ChannelTag{ChannelID: channelID, Name: t}
	}
	err := s.DB.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&rows).Error
	return dbError(err, "channel tags")
}

// RemoveTags takes tags off a friend.
func (s *Store) RemoveTags(ctx context.Context, friendID uint, tags []string) error {
	if len(tags) == 0 {
		return nil
	}
	err := s.DB.WithContext(ctx).Where("friend_id = ? AND tag IN ?", friendID, tags).Delete(&FriendTag{}).Error
	return dbError(err, fmt.Sprintf("tags of friend %d", friendID))
}

// FriendTags lists a friend's tags, sorted.
func (s *Store) FriendTags(ctx context.Context, friendID uint) ([]string, error) {
	var tags []string
	err := s.DB.WithContext(ctx).Model(&FriendTag{}).Where("friend_id = ?", friendID).Order("tag").Pluck("tag", &tags).Error
	return tags, dbError(err, fmt.Sprintf("tags of friend %d", friendID))
}

// ChannelTags lists the channel's tags.
func (s *Store) ChannelTags(ctx context.Context, channelID uint) ([]string, error) {
	var tags []string
	err := s.DB.WithContext(ctx).Model(&ChannelTag{}).Where("channel_id = ?", channelID).Order("name").Pluck("name", &tags).Error
	return tags, dbError(err, "channel tags")
}

// Where an event came from: the prefixes of FriendEvent.SourceKey.
const (
	SourceLINE = "line:" // a LINE webhook event, by its webhookEventId
	SourceAPI  = "api:"  // the admin API or the web events endpoint, by the reporter's ID
)

// SourceKey is the FriendEvent.SourceKey of the event with the given ID
// from source; nil when the event has no ID.
func SourceKey(source, id string) *string {
	if id == "" {
		return nil
	}
	k := source + id
	return &k
}

// RecordEvent stores an event of a friend and reports whether it is new.
// An event whose SourceKey the channel already has is not stored again: e
// becomes the stored event, so that whoever applies it again signals the
// same event. The same key on a different event is a conflict.
func (s *Store) RecordEvent(ctx context.Context, e *FriendEvent) (bool, error) {
	e.At = e.At.UTC()
	if e.Props == "" {
		e.Props = "{}"
	}
	db := s.DB.WithContext(ctx)
	if e.SourceKey == nil {
		return true, dbError(db.Create(e).Error, "event")
	}
	res := db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "channel_id"}, {Name: "source_key"}}, DoNothing: true}).Create(e)
	if res.Error != nil {
		return false, dbError(res.Error, "event")
	}
	if res.RowsAffected == 1 {
		return true, nil
	}
	var old FriendEvent
	if err := db.Where("channel_id = ? AND source_key = ?", e.ChannelID, *e.SourceKey).First(&old).Error; err != nil {
		return false, dbError(err, "event")
	}
	if old.FriendID != e.FriendID || old.Type != e.Type || old.Name != e.Name {
		return false, stepcast.Errorf(stepcast.ECONFLICT, "event ID %q was already used for a different event", strings.TrimPrefix(*e.SourceKey, SourceAPI))
	}
	*e = old
	return false, nil
}

// FriendEvents lists a friend's events at or after since, oldest first.
func (s *Store) FriendEvents(ctx context.Context, friendID uint, since time.Time) ([]FriendEvent, error) {
	var es []FriendEvent
	err := s.DB.WithContext(ctx).Where("friend_id = ? AND at >= ?", friendID, since.UTC()).Order("at, id").Limit(10000).Find(&es).Error
	return es, dbError(err, fmt.Sprintf("events of friend %d", friendID))
}

// CreateAudience inserts an audience.
func (s *Store) CreateAudience(ctx context.Context, a *Audience) error {
	return dbError(s.DB.WithContext(ctx).Create(a).Error, fmt.Sprintf("audience %q", a.Key))
}

// Audience returns the channel's audience with the key.
func (s *Store) Audience(ctx context.Context, channelID uint, key string) (*Audience, error) {
	var a Audience
	err := s.DB.WithContext(ctx).Where("channel_id = ? AND key = ?", channelID, key).First(&a).Error
	if err != nil {
		return nil, dbError(err, fmt.Sprintf("audience %q", key))
	}
	return &a, nil
}

// AudienceKeys lists the channel's audience keys.
func (s *Store) AudienceKeys(ctx context.Context, channelID uint) ([]string, error) {
	var keys []string
	err := s.DB.WithContext(ctx).Model(&Audience{}).Where("channel_id = ?", channelID).Order("key").Pluck("key", &keys).Error
	return keys, dbError(err, "audiences")
}

// Audiences lists the channel's audiences.
func (s *Store) Audiences(ctx context.Context, channelID uint) ([]Audience, error) {
	var as []Audience
	err := s.DB.WithContext(ctx).Where("channel_id = ?", channelID).Order("id").Find(&as).Error
	return as, dbError(err, "audiences")
}

// AddAudienceMembers adds user IDs to an uploaded audience.
func (s *Store) AddAudienceMembers(ctx context.Context, audienceID uint, userIDs []string) error {
	if len(userIDs) == 0 {
		return nil
	}
	rows := make([]AudienceMember, len(userIDs))
	for i, u := range userIDs {
		rows[i] = AudienceMember{AudienceID: audienceID, UserID: u}
	}
	// All or nothing, however many batches.
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return tx.Clauses(clause.OnConflict{DoNothing: true}).CreateInBatches(&rows, 1000).Error
	})
	return dbError(err, "audience members")
}

// IsAudienceMember reports whether the user ID was uploaded to the audience.
func (s *Store) IsAudienceMember(ctx context.Context, audienceID uint, userID string) (bool, error) {
	var n int64
	err := s.DB.WithContext(ctx).Model(&AudienceMember{}).Where("audience_id = ? AND user_id = ?", audienceID, userID).Count(&n).Error
	return n > 0, dbError(err, "audience members")
}
