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
// several workers are) get exactly the limit between them.
func TestRateTokensHoldAcrossTakers(t *testing.T) {
	for name, store := range map[string]*models.Store{"postgres": testenv.Postgres(t), "sqlite": testenv.SQLite(t)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			second := time.Now().Unix()
			var got atomic.Int32
			var wg sync.WaitGroup
			for range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok, err := store.TakeRateToken(ctx, 7, second, 5)
					if err != nil {
						t.Error(err)
					}
					if ok {
						got.Add(1)
					}
				}()
			}
			wg.Wait()
			if got.Load() != 5 {
				t.Fatalf("%d tokens taken in one second with a limit of 5", got.Load())
			}
			if ok, _ := store.TakeRateToken(ctx, 7, second+1, 5); !ok {
				t.Fatal("the next second has no room")
			}
			if ok, _ := store.TakeRateToken(ctx, 8, second, 5); !ok {
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
