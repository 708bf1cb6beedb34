package workflows_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stepcast/stepcast/activities"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/workflows"
)

// The lifecycle tests run testdata/three_steps.yaml from 30 January 15:00
// JST: welcome due 31 January 10:00, coupon 2 February 10:00, reminder 2
// hours after the coupon.

// TestPauseAndResumeAcrossADueTime: the scenario is paused on day 1 at 08:00,
// before the welcome is due at 10:00. The due time passes with no push; the
// query shows the step held because the scenario is paused. Resumed on day 2
// at 14:20, the held step goes then, once; the later steps keep their times.
//
// Pause and resume are each a database change (the truth) and, optionally, a
// control signal (the hint). Without the pause signal the gate still holds;
// without the resume signal the hold's hourly recheck sees the resume at the
// next full hour after it (15:00).
func TestPauseAndResumeAcrossADueTime(t *testing.T) {
	tests := []struct {
		name                      string
		pauseSignal, resumeSignal bool
		sentAt                    string
	}{
		{"both signalled", true, true, "14:20"},
		{"pause without a signal", false, true, "14:20"},
		{"resume without a signal", true, false, "15:00"},
		{"neither signalled", false, false, "15:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, jst(2026, 1, 30, 15, 0))
			f.activate()
			pause := func() { f.setStatus(models.ScenarioPaused) }
			resume := func() { f.setStatus(models.ScenarioActive) }
			pauseAt, resumeAt := jst(2026, 1, 31, 8, 0), jst(2026, 2, 1, 14, 20)
			if tt.pauseSignal {
				f.controlAt(pauseAt, workflows.ControlPause, pause)
			} else {
				f.at(pauseAt, pause)
			}
			if tt.resumeSignal {
				f.controlAt(resumeAt, workflows.ControlResume, resume)
			} else {
				f.at(resumeAt, resume)
			}
			var beforeDue, held, heldNextDay workflows.State
			f.queryAt(jst(2026, 1, 31, 9, 0), &beforeDue)
			f.queryAt(jst(2026, 1, 31, 10, 30), &held)
			f.queryAt(jst(2026, 2, 1, 14, 0), &heldNextDay)

			st := f.run(parseFile(t, "testdata/three_steps.yaml"))

			sentAt := map[string]struct{ h, m int }{"14:20": {14, 20}, "15:00": {15, 0}}[tt.sentAt]
			want := jst(2026, 2, 1, sentAt.h, sentAt.m)
			requireTimes(t, f.line.Attempts(), want, jst(2026, 2, 2, 10, 0), jst(2026, 2, 2, 12, 0))
			requireTimes(t, f.line.Delivered(), want, jst(2026, 2, 2, 10, 0), jst(2026, 2, 2, 12, 0))
			require.Equal(t, key("welcome#1"), f.line.Delivered()[0].RetryKey)
			require.Equal(t, []string{"Welcome!", "Your coupon: SAVE10", "The coupon ends today"}, f.deliveredTexts())
			require.Equal(t, 3, st.StepsSent)
			require.Equal(t, workflows.StatusCompleted, st.Status)
			require.Len(t, f.deliveries(), 3)

			require.Equal(t, workflows.StatusWaiting, beforeDue.Status, "a paused scenario's wait is a wait")
			require.Equal(t, workflows.StatusHeld, held.Status)
			require.Equal(t, activities.HoldPaused, held.HeldReason)
			require.Equal(t, "welcome", held.Node)
			require.NotNil(t, held.NextDueAt)
			require.True(t, held.NextDueAt.Equal(jst(2026, 1, 31, 11, 0)), "rechecked hourly: %s", held.NextDueAt.In(tokyo))
			require.Equal(t, workflows.StatusHeld, heldNextDay.Status)
			require.Equal(t, activities.HoldPaused, heldNextDay.HeldReason)
			require.Zero(t, heldNextDay.StepsSent)
		})
	}
}

// TestPauseAndResumeBeforeTheDueTime: a pause that is over before the step
// is due changes nothing.
func TestPauseAndResumeBeforeTheDueTime(t *testing.T) {
	f := newFixture(t, jst(2026, 1, 30, 15, 0))
	f.activate()
	f.controlAt(jst(2026, 1, 31, 8, 0), workflows.ControlPause, func() { f.setStatus(models.ScenarioPaused) })
	f.controlAt(jst(2026, 1, 31, 9, 0), workflows.ControlResume, func() { f.setStatus(models.ScenarioActive) })
	f.run(parseFile(t, "testdata/three_steps.yaml"))
	requireTimes(t, f.line.Attempts(), jst(2026, 1, 31, 10, 0), jst(2026, 2, 2, 10, 0), jst(2026, 2, 2, 12, 0))
}

// TestEndSignalDuringAWait: the end signal ends a waiting enrollment at once
// with "scenario ended"; nothing more is sent.
func TestEndSignalDuringAWait(t *testing.T) {
	f := newFixture(t, jst(2026, 1, 30, 15, 0))
	f.activate()
	endAt := jst(2026, 2, 1, 12, 0)
	f.controlAt(endAt, workflows.ControlEnd, func() { f.setStatus(models.ScenarioEnded) })

	st := f.run(parseFile(t, "testdata/three_steps.yaml"))

	requireTimes(t, f.line.Attempts(), jst(2026, 1, 31, 10, 0))
	require.Equal(t, workflows.StatusExited, st.Status)
	require.Equal(t, workflows.ExitScenarioEnded, st.ExitReason)
	require.Equal(t, "day3", st.Node)
	require.True(t, f.env.Now().Equal(endAt), "ended at the signal, now %s", f.env.Now().In(tokyo))
	row := f.enrollmentRow()
	require.Equal(t, models.EnrollmentExited, row.Status)
	require.Equal(t, workflows.ExitScenarioEnded, row.ExitReason)
}

// TestEndSignalDuringAPause: a step held by a pause ends at the end signal.
func TestEndSignalDuringAPause(t *testing.T) {
	f := newFixture(t, jst(2026, 1, 30, 15, 0))
	f.activate()
	f.controlAt(jst(2026, 1, 31, 8, 0), workflows.ControlPause, func() { f.setStatus(models.ScenarioPaused) })
	endAt := jst(2026, 1, 31, 12, 30)
	f.controlAt(endAt, workflows.ControlEnd, func() { f.setStatus(models.ScenarioEnded) })

	st := f.run(parseFile(t, "testdata/three_steps.yaml"))

	require.Empty(t, f.line.Attempts())
	require.Equal(t, workflows.ExitScenarioEnded, st.ExitReason)
	require.Equal(t, "welcome", st.Node)
	require.True(t, f.env.Now().Equal(endAt), "ended at the signal, now %s", f.env.Now().In(tokyo))
	require.Empty(t, f.deliveries())
}

// TestEndedScenarioWithoutASignal: the scenario row says ended but no
// signal came; the next gate (the coupon's, on day 3 at 10:00) ends the
// enrollment before the push.
func TestEndedScenarioWithoutASignal(t *testing.T) {
	f := newFixture(t, jst(2026, 1, 30, 15, 0))
	f.activate()
	f.at(jst(2026, 2, 1, 12, 0), func() { f.setStatus(models.ScenarioEnded) })

	st := f.run(parseFile(t, "testdata/three_steps.yaml"))

	requireTimes(t, f.line.Attempts(), jst(2026, 1, 31, 10, 0))
	require.Equal(t, workflows.ExitScenarioEnded, st.ExitReason)
	require.Equal(t, "coupon", st.Node)
	require.True(t, f.env.Now().Equal(jst(2026, 2, 2, 10, 0)), "ended at the next gate, now %s", f.env.Now().In(tokyo))
	require.Len(t, f.deliveries(), 1)
}

// TestRunKeepsItsVersion: while the enrollment runs version 1, the marketer
// edits the draft and publishes version 2 with other messages and times.
// The run sends version 1's messages at version 1's times: the document
// travels in the workflow's input, the database rows do not matter to it.
func TestRunKeepsItsVersion(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, jst(2026, 1, 30, 15, 0))
	v1 := parseFile(t, "testdata/three_steps.yaml")
	b, err := json.Marshal(v1)
	require.NoError(t, err)
	_, err = f.store.Publish(ctx, f.sc.ID, string(b), f.start)
	require.NoError(t, err)

	f.at(jst(2026, 1, 31, 12, 0), func() {
		v2 := parse(t, `
name: Three steps, v2
start: {type: follow}
nodes:
  - {id: day1, type: wait, next: welcome, wait: {days: 1, at: "09:00"}}
  - {id: welcome, type: message, next: day3, message: {messages: [{type: text, text: "Welcome to v2"}]}}
  - {id: day3, type: wait, next: coupon, wait: {days: 2, at: "18:00"}}
  - {id: coupon, type: message, message: {messages: [{type: text, text: "A v2 coupon"}]}}
`)
		b, err := json.Marshal(v2)
		require.NoError(t, err)
		require.NoError(t, f.store.UpdateDraft(ctx, f.sc.ID, v2.Name, string(b)))
		v, err := f.store.Publish(ctx, f.sc.ID, string(b), f.env.Now())
		require.NoError(t, err)
		require.Equal(t, 2, v.Version)
	})

	st := f.run(v1)

	requireTimes(t, f.line.Delivered(), jst(2026, 1, 31, 10, 0), jst(2026, 2, 2, 10, 0), jst(2026, 2, 2, 12, 0))
	require.Equal(t, []string{"Welcome!", "Your coupon: SAVE10", "The coupon ends today"}, f.deliveredTexts())
	require.Equal(t, 1, st.Version)
	require.Equal(t, 3, st.StepsSent)
	sc, err := f.store.Scenario(ctx, f.sc.ID)
	require.NoError(t, err)
	require.Equal(t, 2, sc.Version, "version 2 was published during the run")
}
