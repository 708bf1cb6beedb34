package models_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/models"
)

// The rate limit is one row per channel and second: concurrent takers (as
// several workers are) get no more than the limit between them, whether
// they take one token or a batch, and a batch that does not fit takes
// nothing.
func TestRateTokensHoldAcrossTakers(t *testing.T) {
	for name, store := range map[string]*models.Store{"postgres": testenv.Postgres(t), "sqlite": testenv.SQLite(t)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			second := time.Now().Unix()
			take := func(second int64, n int) bool {
				t.Helper()
				ok, err := store.TakeRateTokens(ctx, 7, second, 10, n)
				if err != nil {
					t.Fatal(err)
				}
				return ok
			}
			var got atomic.Int32
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					n := 1 + 2*(i%2) // batches of 1 and 3
					ok, err := store.TakeRateTokens(ctx, 7, second, 10, n)
					if err != nil {
						t.Error(err)
					}
					if ok {
						got.Add(int32(n))
					}
				}()
			}
			wg.Wait()
			if got.Load() != 10 && got.Load() != 9 {
				t.Fatalf("%d tokens taken in one second with a limit of 10", got.Load())
			}
			if take(second, 11-int(got.Load())) {
				t.Fatal("a batch over the limit was taken")
			}
			if got.Load() == 9 && !take(second, 1) {
				t.Fatal("the last token of the second could not be taken")
			}
			if take(second, 1) {
				t.Fatal("a token was taken from a full second")
			}
			if take(second+1, 11) {
				t.Fatal("a batch larger than the limit was taken")
			}
			if !take(second+1, 10) {
				t.Fatal("the next second has no room")
			}
			if ok, _ := store.TakeRateTokens(ctx, 8, second, 10, 1); !ok {
				t.Fatal("another channel shares the limit")
			}
		})
	}
}

// Budget reservations: concurrent reservations cannot overspend, and a
// release gives room back.
func TestBudgetReservations(t *testing.T) {
	for name, store := range map[string]*models.Store{"postgres": testenv.Postgres(t), "sqlite": testenv.SQLite(t)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			ch := &models.Channel{Name: "c", LineChannelID: "1", Secret: "s", AccessToken: "t", TimeZone: "Asia/Tokyo", MonthlyBudget: 10}
			if err := store.CreateChannel(ctx, ch); err != nil {
				t.Fatal(err)
			}
			var ok atomic.Int32
			var wg sync.WaitGroup
			for range 12 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got, err := store.ReserveBudget(ctx, ch, "2026-11", 2)
					if err != nil {
						t.Error(err)
					}
					if got {
						ok.Add(1)
					}
				}()
			}
			wg.Wait()
			if ok.Load() != 5 {
				t.Fatalf("%d reservations of 2 fit a budget of 10", ok.Load())
			}
			if used, _ := store.Usage(ctx, ch.ID, "2026-11"); used != 10 {
				t.Fatalf("used = %d", used)
			}
			if err := store.ReleaseBudget(ctx, ch.ID, "2026-11", 2); err != nil {
				t.Fatal(err)
			}
			if got, _ := store.ReserveBudget(ctx, ch, "2026-11", 2); !got {
				t.Fatal("a release did not give room back")
			}
			if got, _ := store.ReserveBudget(ctx, ch, "2026-12", 10); !got {
				t.Fatal("a new month has no room")
			}
		})
	}
}
