package models_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/models"
)

// A follow makes a new friend in one statement and says so; later events
// change the status only when they are not older than it; a friend first
// seen blocking gets a first follow when they follow.
func TestApplyStatus(t *testing.T) {
	for name, store := range map[string]*models.Store{"postgres": testenv.Postgres(t), "sqlite": testenv.SQLite(t)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			t0 := time.Date(2026, 3, 1, 9, 58, 0, 123e6, time.UTC)
			apply := func(user string, at time.Time, status string) models.StatusChange {
				t.Helper()
				c, err := store.ApplyStatus(ctx, 1, user, at, status)
				if err != nil {
					t.Fatal(err)
				}
				return c
			}

			c := apply("U1", t0, models.FriendFollowing)
			if !c.Applied || !c.Created || c.Friend.ID == 0 || c.Friend.Status != models.FriendFollowing ||
				!c.Friend.FirstFollowedAt.Equal(t0) || c.Friend.Attributes != "{}" {
				t.Fatalf("first follow = %+v, friend %+v", c, c.Friend)
			}
			id := c.Friend.ID

			// The same follow again (a redelivery): applied, not new.
			c = apply("U1", t0, models.FriendFollowing)
			if !c.Applied || c.Created || c.Friend.ID != id {
				t.Fatalf("same follow again = %+v", c)
			}

			c = apply("U1", t0.Add(time.Minute), models.FriendBlocked)
			if !c.Applied || c.Created || c.Friend.Status != models.FriendBlocked || c.Friend.BlockedAt == nil ||
				!c.Friend.BlockedAt.Equal(t0.Add(time.Minute)) || !c.Friend.StatusAt.Equal(t0.Add(time.Minute)) {
				t.Fatalf("block = %+v, friend %+v", c, c.Friend)
			}

			// A follow older than the block, applied late: no change.
			c = apply("U1", t0.Add(30*time.Second), models.FriendFollowing)
			if c.Applied || c.Created || c.Friend.Status != models.FriendBlocked || c.Friend.ID != id {
				t.Fatalf("older follow = %+v, friend %+v", c, c.Friend)
			}

			c = apply("U1", t0.Add(time.Hour), models.FriendFollowing)
			f := c.Friend
			if !c.Applied || c.Created || f.Status != models.FriendFollowing || !f.FirstFollowedAt.Equal(t0) ||
				!f.LastFollowedAt.Equal(t0.Add(time.Hour)) || f.ID != id || f.UserID != "U1" || f.ChannelID != 1 {
				t.Fatalf("re-follow = %+v, friend %+v", c, f)
			}
			stored, err := store.Friend(ctx, 1, "U1")
			if err != nil {
				t.Fatal(err)
			}
			if stored.Status != f.Status || !stored.StatusAt.Equal(f.StatusAt) || !stored.LastFollowedAt.Equal(f.LastFollowedAt) ||
				!stored.FirstFollowedAt.Equal(t0) || !stored.CreatedAt.Before(stored.UpdatedAt) {
				t.Fatalf("stored %+v, returned %+v", stored, f)
			}

			// First seen blocking, then following: the follow is the first.
			c = apply("U2", t0, models.FriendBlocked)
			if !c.Created || !c.Friend.FirstFollowedAt.IsZero() {
				t.Fatalf("block of an unknown friend = %+v, friend %+v", c, c.Friend)
			}
			c = apply("U2", t0.Add(time.Second), models.FriendFollowing)
			if !c.Applied || c.Created || !c.Friend.FirstFollowedAt.Equal(t0.Add(time.Second)) {
				t.Fatalf("follow after a block = %+v, friend %+v", c, c.Friend)
			}
		})
	}
}

// Concurrent follows of one new friend: exactly one of them creates it.
func TestApplyStatusConcurrent(t *testing.T) {
	store := testenv.Postgres(t)
	ctx := context.Background()
	at := time.Now()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
		ids     = map[uint]bool{}
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := store.ApplyStatus(ctx, 1, "U1", at, models.FriendFollowing)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			ids[c.Friend.ID] = true
			if c.Created {
				created++
			}
		}()
	}
	wg.Wait()
	if created != 1 || len(ids) != 1 {
		t.Fatalf("%d follows created the friend, %d friend IDs; want 1 and 1", created, len(ids))
	}
}
