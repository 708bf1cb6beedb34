package activities

import (
	"context"

	"github.com/stepcast/stepcast/models"
)

// RateBatch is rateBatch.
const RateBatch = rateBatch

// TakeRateToken is takeRateToken, for tests that name the second rather
// than wait for it.
func (a *Activities) TakeRateToken(ctx context.Context, channelID uint, second int64, limit int) (bool, error) {
	return a.takeRateToken(ctx, channelID, second, limit)
}

// WaitForRate is waitForRate.
func (a *Activities) WaitForRate(ctx context.Context, ch *models.Channel) error {
	return a.waitForRate(ctx, ch)
}
