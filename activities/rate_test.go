package activities_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stepcast/stepcast/activities"
	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/models"
)

// twoWorkers are the activities of two worker processes on one PostgreSQL
// database: each its own pool and its own claimed tokens.
func twoWorkers(t *testing.T) (*models.Store, [2]*activities.Activities) {
	t.Helper()
	url := testenv.PostgresDatabase(t)
	var acts [2]*activities.Activities
	var store *models.Store
	for i := range acts {
		s, err := models.Open(url, "", testenv.Logger())
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		acts[i], store = &activities.Activities{Store: s}, s
	}
	return store, acts
}

// windows returns the channel's counted pushes by second.
func windows(t *testing.T, store *models.Store, channelID uint) map[int64]int {
	t.Helper()
	var ws []models.RateWindow
	require.NoError(t, store.DB.Where("channel_id = ?", channelID).Find(&ws).Error)
	out := map[int64]int{}
	for _, w := range ws {
		out[w.Second] = w.Count
	}
	return out
}

// TestRateTokensAcrossWorkers: two workers hammering one channel's second
// hand out exactly its limit between them (their claimed batches are
// counted in the database, and the last tokens are claimed one by one),
// and a batch's tokens left when its second ends are not used in the next.
func TestRateTokensAcrossWorkers(t *testing.T) {
	store, acts := twoWorkers(t)
	ctx := context.Background()
	const channelID, limit = 1, 12*activities.RateBatch + 13 // 13 left after the batches
	second := time.Now().Unix()

	for _, s := range []int64{second, second + 1} {
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			took [2]int
		)
		for w, a := range acts {
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						ok, err := a.TakeRateToken(ctx, channelID, s, limit)
						if err != nil {
							t.Error(err)
							return
						}
						if !ok {
							return
						}
						mu.Lock()
						took[w]++
						mu.Unlock()
					}
				}()
			}
		}
		wg.Wait()
		require.Equal(t, limit, took[0]+took[1], "tokens handed out in one second by both workers: %v", took)
		require.Equal(t, limit, windows(t, store, channelID)[s])
	}

	// The first worker claims a batch in one second and uses one token;
	// the second worker fills the next second; the first has none there.
	ok, err := acts[0].TakeRateToken(ctx, channelID, second+2, limit)
	require.NoError(t, err)
	require.True(t, ok)
	for {
		ok, err := acts[1].TakeRateToken(ctx, channelID, second+3, limit)
		require.NoError(t, err)
		if !ok {
			break
		}
	}
	ok, err = acts[0].TakeRateToken(ctx, channelID, second+3, limit)
	require.NoError(t, err)
	require.False(t, ok, "a token of an earlier second was used")
	w := windows(t, store, channelID)
	require.Equal(t, activities.RateBatch, w[second+2])
	require.Equal(t, limit, w[second+3])
}

// TestWaitForRate: pushes over a channel's limit wait for the next second.
func TestWaitForRate(t *testing.T) {
	store, acts := twoWorkers(t)
	ch := &models.Channel{ID: 1, RateLimit: 2}
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := acts[i%2].WaitForRate(context.Background(), ch); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	w := windows(t, store, ch.ID)
	total := 0
	for s, n := range w {
		require.LessOrEqual(t, n, 2, "second %d", s)
		total += n
	}
	require.Equal(t, 5, total)
	require.GreaterOrEqual(t, len(w), 3)
}

// TestRateWindowsPrunedOncePerMinute: a worker deletes the windows of more
// than a minute ago when it first claims tokens in a minute, and not again
// in the same minute however much it pushes.
func TestRateWindowsPrunedOncePerMinute(t *testing.T) {
	store, acts := twoWorkers(t)
	ctx := context.Background()
	start := time.Now().Unix()/60*60 + 10 // ten seconds into a minute
	old := func() *models.RateWindow {
		t.Helper()
		w := &models.RateWindow{ChannelID: 9, Second: start - 3600, Count: 1}
		require.NoError(t, store.DB.Create(w).Error)
		return w
	}
	take := func(second int64) {
		t.Helper()
		ok, err := acts[0].TakeRateToken(ctx, 1, second, 1)
		require.NoError(t, err)
		require.True(t, ok)
	}

	old()
	take(start)
	require.NotContains(t, windows(t, store, 9), start-3600, "pruned at the first claim")
	old()
	for s := start + 1; s < start+50; s++ {
		take(s)
	}
	require.Contains(t, windows(t, store, 9), start-3600, "pruned twice in a minute")
	take(start + 60)
	require.NotContains(t, windows(t, store, 9), start-3600, "not pruned in the next minute")
}
