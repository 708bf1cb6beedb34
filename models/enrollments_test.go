package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/models"
)

// A run's end is recorded whether or not its row was written first: the
// end of a run with no row writes it, ended, and the row's recording
// that comes after it leaves it ended; the end of a recorded run changes
// only how it ended.
func TestFinishEnrollmentWithOrWithoutItsRow(t *testing.T) {
	for name, store := range map[string]*models.Store{"postgres": testenv.Postgres(t), "sqlite": testenv.SQLite(t)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			followed := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
			ended := followed.Add(time.Hour)
			run := func(id string) models.Enrollment {
				return models.Enrollment{ChannelID: 1, ScenarioID: 2, ScenarioVersion: 3, FriendID: 4,
					WorkflowID: "enrollment/1/welcome/U1", RunID: id, FollowedAt: followed, StartedAt: followed.Add(time.Second)}
			}
			row := func(id string) models.Enrollment {
				t.Helper()
				var e models.Enrollment
				if err := store.DB.Where("run_id = ?", id).First(&e).Error; err != nil {
					t.Fatal(err)
				}
				return e
			}

			// The run ended before its row was written.
			if err := store.FinishEnrollment(ctx, run("r1"), models.EnrollmentExited, "exit_node", ended); err != nil {
				t.Fatal(err)
			}
			got := row("r1")
			if got.Status != models.EnrollmentExited || got.ExitReason != "exit_node" || got.EndedAt == nil || !got.EndedAt.Equal(ended) ||
				got.ChannelID != 1 || got.ScenarioID != 2 || got.ScenarioVersion != 3 || got.FriendID != 4 ||
				!got.FollowedAt.Equal(followed) || !got.StartedAt.Equal(followed.Add(time.Second)) {
				t.Fatalf("row written by the end = %+v", got)
			}
			late := run("r1")
			if err := store.RecordEnrollment(ctx, &late); err != nil {
				t.Fatal(err)
			}
			if got := row("r1"); got.Status != models.EnrollmentExited {
				t.Fatalf("recorded after its end: status %q, want %q", got.Status, models.EnrollmentExited)
			}

			// The usual order: recorded, then ended.
			first := run("r2")
			if err := store.RecordEnrollment(ctx, &first); err != nil {
				t.Fatal(err)
			}
			if err := store.FinishEnrollment(ctx, models.Enrollment{WorkflowID: first.WorkflowID, RunID: "r2"}, models.EnrollmentCompleted, "", ended); err != nil {
				t.Fatal(err)
			}
			got = row("r2")
			if got.ID != first.ID || got.Status != models.EnrollmentCompleted || got.EndedAt == nil || got.FriendID != 4 || !got.FollowedAt.Equal(followed) {
				t.Fatalf("row after its end = %+v, want row %d completed with its fields kept", got, first.ID)
			}
			var n int64
			if err := store.DB.Model(&models.Enrollment{}).Count(&n).Error; err != nil || n != 2 {
				t.Fatalf("%d rows (%v), want 2", n, err)
			}
		})
	}
}
