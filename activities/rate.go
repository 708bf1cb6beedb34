package activities

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stepcast/stepcast/models"
)

// rateBatch is the most push tokens a process claims in one round trip.
// A process's pushes on a channel take their tokens from one claim at a
// time, so it also bounds them to rateBatch per round trip. A claim is
// also at most a tenth of the channel's limit, so that processes share a
// small limit and little of it is lost to a batch whose second ends before
// it is used.
const rateBatch = 20

// rateTokens hands out the tokens of a channel's per-second push limit that
// this process has claimed from the database, where each second's count
// covers the tokens claimed by every process: however processes use their
// batches, no more than the limit are pushed in a second. Tokens are only
// handed out while their second is the latest this process has seen; a
// second's unused tokens are lost, which under-sends and never over-sends.
type rateTokens struct {
	mu       sync.Mutex
	channels map[uint]*channelTokens
	// prunedMinute is the minute (Unix seconds / 60) in which this process
	// last deleted old windows.
	prunedMinute atomic.Int64
}

// channelTokens are one channel's tokens of one second.
type channelTokens struct {
	mu     sync.Mutex
	second int64
	left   int
	// full: the database had none left for the second.
	full bool
}

func (r *rateTokens) of(channelID uint) *channelTokens {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.channels == nil {
		r.channels = map[uint]*channelTokens{}
	}
	t, ok := r.channels[channelID]
	if !ok {
		t = &channelTokens{}
		r.channels[channelID] = t
	}
	return t
}

// waitForRate takes a token of the channel's per-second push limit, waiting
// for the next second when this one is full.
func (a *Activities) waitForRate(ctx context.Context, ch *models.Channel) error {
	limit := ch.RateLimit
	if limit <= 0 {
		limit = models.LinePushRateLimit
	}
	for {
		now := time.Now()
		ok, err := a.takeRateToken(ctx, ch.ID, now.Unix(), limit)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(now.Truncate(time.Second).Add(time.Second))):
		}
	}
}

// takeRateToken hands out a token of second, claiming more from the
// database when this process has none left, and reports false when the
// second is full. The channel's pushes wait for one claim at a time: they
// would take from the same batch.
func (a *Activities) takeRateToken(ctx context.Context, channelID uint, second int64, limit int) (bool, error) {
	t := a.rate.of(channelID)
	t.mu.Lock()
	defer t.mu.Unlock()
	// A push that waited for the lock past its second's end takes from
	// the current second instead: it goes out now.
	if second > t.second {
		t.second, t.left, t.full = second, 0, false
	}
	if t.left == 0 && !t.full {
		n, err := a.claimRateTokens(ctx, channelID, t.second, limit)
		if err != nil {
			return false, err
		}
		t.left, t.full = n, n == 0
	}
	if t.left == 0 {
		return false, nil
	}
	t.left--
	return true, nil
}

// claimRateTokens claims a batch of the second's tokens, or a single one
// when fewer than a batch are left, and returns how many it got.
func (a *Activities) claimRateTokens(ctx context.Context, channelID uint, second int64, limit int) (int, error) {
	n := min(rateBatch, max(1, limit/10))
	ok, err := a.Store.TakeRateTokens(ctx, channelID, second, limit, n)
	if err == nil && !ok && n > 1 {
		n = 1
		ok, err = a.Store.TakeRateTokens(ctx, channelID, second, limit, n)
	}
	if err != nil || !ok {
		return 0, err
	}
	// Old windows are of no use; once a minute, each process clears them
	// (several doing it at once is harmless; a failure waits a minute).
	last, minute := a.rate.prunedMinute.Load(), second/60
	if minute > last && a.rate.prunedMinute.CompareAndSwap(last, minute) {
		_ = a.Store.PruneRateWindows(ctx, second-60)
	}
	return n, nil
}
