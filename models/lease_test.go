package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/models"
)

// Only one holder has a lease until it expires; the holder renews it.
func TestLease(t *testing.T) {
	for name, store := range map[string]*models.Store{"postgres": testenv.Postgres(t), "sqlite": testenv.SQLite(t)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			got := func(holder string, ttl time.Duration) bool {
				ok, err := store.AcquireLease(ctx, "inbox", holder, ttl)
				if err != nil {
					t.Fatal(err)
				}
				return ok
			}
			if !got("a", time.Minute) {
				t.Fatal("a did not get a free lease")
			}
			if got("b", time.Minute) {
				t.Fatal("b took a's lease before it expired")
			}
			if !got("a", 10*time.Millisecond) {
				t.Fatal("a could not renew its lease")
			}
			time.Sleep(30 * time.Millisecond)
			if !got("b", time.Minute) {
				t.Fatal("b did not get the expired lease")
			}
			if got("a", time.Minute) {
				t.Fatal("a took the lease back from b")
			}
		})
	}
}
