package activities

import (
	"context"
)

// Enroller enrolls friends in scenarios. The enroll package implements it;
// activities cannot import enroll, which uses them.
type Enroller interface {
	// EnrollAudienceMembers enrolls those of the friends who are in the
	// scenario's start audience and may enter, and returns how many it
	// enrolled and the scenario's status.
	EnrollAudienceMembers(ctx context.Context, scenarioID uint, version int, friendIDs []uint) (enrolled int, status string, err error)
}

// NextFriendsInput asks for a page of a channel's following friends.
type NextFriendsInput struct {
	ChannelID uint
	AfterID   uint
	Limit     int
}

// NextFriends returns the IDs of the next following friends after AfterID.
func (a *Activities) NextFriends(ctx context.Context, in NextFriendsInput) ([]uint, error) {
	return a.Store.FollowingFriendIDs(ctx, in.ChannelID, in.AfterID, in.Limit)
}

// EnrollBatchInput is a page of friends for a bulk enrollment.
type EnrollBatchInput struct {
	ScenarioID uint
	Version    int
	FriendIDs  []uint
}

// EnrollBatchResult says how the page went.
type EnrollBatchResult struct {
	Enrolled       int
	ScenarioStatus string
}

// EnrollAudienceBatch enrolls the audience's members among a page of
// friends. Enrolling is idempotent (one running enrollment per friend and
// scenario, and the re-entry rule), so a retried page enrolls nobody twice.
func (a *Activities) EnrollAudienceBatch(ctx context.Context, in EnrollBatchInput) (EnrollBatchResult, error) {
	n, status, err := a.Enroller.EnrollAudienceMembers(ctx, in.ScenarioID, in.Version, in.FriendIDs)
	return EnrollBatchResult{Enrolled: n, ScenarioStatus: status}, err
}
