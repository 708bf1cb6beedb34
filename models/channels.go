package models

import (
	"context"
	"fmt"
)

// CreateChannel inserts a channel; a second channel with the same LINE
// channel ID is ECONFLICT.
func (s *Store) CreateChannel(ctx context.Context, c *Channel) error {
	return dbError(s.DB.WithContext(ctx).Create(c).Error, fmt.Sprintf("channel with LINE channel ID %q", c.LineChannelID))
}

// Channel returns the channel with the given ID.
func (s *Store) Channel(ctx context.Context, id uint) (*Channel, error) {
	var c Channel
	if err := s.DB.WithContext(ctx).First(&c, id).Error; err != nil {
		return nil, dbError(err, fmt.Sprintf("channel %d", id))
	}
	return &c, nil
}

// Channels lists the channels.
func (s *Store) Channels(ctx context.Context, p Page) ([]Channel, error) {
	var cs []Channel
	err := p.apply(s.DB.WithContext(ctx).Order("id")).Find(&cs).Error
	return cs, dbError(err, "channels")
}
