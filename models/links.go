package models

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm/clause"
)

// TrackedLinkID returns the ID of the scenario node's link to url, making
// it the first time.
func (s *Store) TrackedLinkID(ctx context.Context, channelID, scenarioID uint, nodeID, url string) (uint, error) {
	l := TrackedLink{ChannelID: channelID, ScenarioID: scenarioID, NodeID: nodeID, URL: url}
	db := s.DB.WithContext(ctx)
	if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&l).Error; err != nil {
		return 0, dbError(err, "tracked link")
	}
	if l.ID != 0 {
		return l.ID, nil
	}
	err := db.Where("channel_id = ? AND scenario_id = ? AND node_id = ? AND url = ?", channelID, scenarioID, nodeID, url).First(&l).Error
	return l.ID, dbError(err, "tracked link")
}

// TrackedLink returns a link by ID.
func (s *Store) TrackedLink(ctx context.Context, id uint) (*TrackedLink, error) {
	var l TrackedLink
	if err := s.DB.WithContext(ctx).First(&l, id).Error; err != nil {
		return nil, dbError(err, fmt.Sprintf("link %d", id))
	}
	return &l, nil
}

// CreateKeywordRule adds a keyword rule.
func (s *Store) CreateKeywordRule(ctx context.Context, r *KeywordRule) error {
	return dbError(s.DB.WithContext(ctx).Create(r).Error, "keyword rule")
}

// KeywordRules lists a channel's keyword rules.
func (s *Store) KeywordRules(ctx context.Context, channelID uint) ([]KeywordRule, error) {
	var rs []KeywordRule
	err := s.DB.WithContext(ctx).Where("channel_id = ?", channelID).Order("id").Find(&rs).Error
	return rs, dbError(err, "keyword rules")
}

// DeleteKeywordRule removes one of the channel's keyword rules.
func (s *Store) DeleteKeywordRule(ctx context.Context, channelID, id uint) error {
	res := s.DB.WithContext(ctx).Where("channel_id = ? AND id = ?", channelID, id).Delete(&KeywordRule{})
	if res.Error != nil {
		return dbError(res.Error, "keyword rule")
	}
	if res.RowsAffected == 0 {
		return dbError(errNotFound, fmt.Sprintf("keyword rule %d", id))
	}
	return nil
}

// Matches reports whether a chat message triggers the rule.
func (r *KeywordRule) Matches(text string) bool {
	text, kw := strings.ToLower(strings.TrimSpace(text)), strings.ToLower(r.Keyword)
	if r.Exact {
		return text == kw
	}
	return strings.Contains(text, kw)
}

// SetEventsKeyHash stores the hash of a channel's new events key.
func (s *Store) SetEventsKeyHash(ctx context.Context, channelID uint, hash string) error {
	err := s.DB.WithContext(ctx).Model(&Channel{}).Where("id = ?", channelID).Update("events_key_hash", hash).Error
	return dbError(err, fmt.Sprintf("channel %d", channelID))
}

// RecordRouteVisit stores a visit of a tracked friend-add link.
func (s *Store) RecordRouteVisit(ctx context.Context, v *RouteVisit) error {
	return dbError(s.DB.WithContext(ctx).Create(v).Error, "route visit")
}

// RouteVisits counts visits per route of a channel since t.
func (s *Store) RouteVisits(ctx context.Context, channelID uint, since time.Time) (map[string]int64, error) {
	var rows []struct {
		Route string
		N     int64
	}
	err := s.DB.WithContext(ctx).Model(&RouteVisit{}).Select("route, count(*) AS n").
		Where("channel_id = ? AND at >= ?", channelID, since.UTC()).Group("route").Scan(&rows).Error
	out := map[string]int64{}
	for _, r := range rows {
		out[r.Route] = r.N
	}
	return out, dbError(err, "route visits")
}
