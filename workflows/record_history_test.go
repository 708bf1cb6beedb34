//go:build record

package workflows_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/stepcast/stepcast/activities"
	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/scenario"
	"github.com/stepcast/stepcast/worker"
	"github.com/stepcast/stepcast/workflows"
)

// recordedHistory is the newest history TestReplayRecordedHistories
// replays (v1: before the Deliver local activity; v2: since; v3: a run
// started with EnrollmentInput.Revision, without the GetVersion marker; v4:
// revision 2, started with StepcastNode at its entry wait).
const recordedHistory = "testdata/enrollment-v4.history.json"

// replayDoc covers every node type the replay test guards (wait, message,
// branch on tags and an audience, wait_event satisfied by a signal, split,
// tag, exit rules) with waits of seconds, so it runs in real time.
const replayDoc = `
name: replay
start: {type: follow}
exit:
  events: [{type: custom, name: stop}]
nodes:
  - {id: w1, type: wait, next: m1, wait: {after: 1s}}
  - {id: m1, type: message, next: b1, message: {messages: [{type: text, text: "Hello {{displayName}}"}]}}
  - id: b1
    type: branch
    branch:
      default: m_default
      cases:
        - {when: {route: [ad]}, next: m_default}
        - {when: {all: [{tag: vip}, {audience: vips}]}, next: we1}
  - {id: m_default, type: message, message: {messages: [{type: text, text: "default"}]}}
  - id: we1
    type: wait_event
    waitEvent:
      event: {type: click, node: m1}
      timeout: {after: 10m, from: previous}
      onEvent: s1
      onTimeout: m_default
  - id: s1
    type: split
    split:
      paths:
        - {weight: 50, next: t1}
        - {weight: 50, next: t1}
  - {id: t1, type: tag, next: m2, tag: {add: [engaged], remove: [vip]}}
  - {id: m2, type: message, next: w2, message: {messages: [{type: text, text: "held by quiet hours"}]}}
  - {id: w2, type: wait, next: m3, wait: {after: 1s, from: previous}}
  - {id: m3, type: message, message: {messages: [{type: text, text: "last"}]}}
`

// TestRecordEnrollmentHistory is not a test of behaviour but a generator,
// built only with the "record" tag (`make record-history`), so the suite
// holds no test that skips: it runs one enrollment of replayDoc on a real
// Temporal server (the dev server of bin/temporal, or
// STEPCAST_TEST_TEMPORAL_ADDRESS) with the real activities on SQLite and the
// fake LINE, drives it through a wait_event (a click signal) and a quiet
// hours hold (ended by clearing the quiet hours and a recheck signal), and
// writes its history to recordedHistory for TestReplayRecordedHistories.
func TestRecordEnrollmentHistory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := testenv.Temporal(t)
	store := testenv.SQLite(t)

	ch := &models.Channel{Name: "Shop", LineChannelID: "1650000000", Secret: "secret", AccessToken: "channel-token", TimeZone: "Asia/Tokyo"}
	require.NoError(t, store.CreateChannel(ctx, ch))
	friend, _, err := store.ApplyFollow(ctx, ch.ID, "Ufriend0001", time.Now())
	require.NoError(t, err)
	require.NoError(t, store.AddTags(ctx, friend.ID, []string{"vip"}))
	require.NoError(t, store.CreateAudience(ctx, &models.Audience{ChannelID: ch.ID, Key: "vips", Name: "VIPs", Kind: models.AudienceRule, Rule: `{"tag":"vip"}`}))
	sc := &models.Scenario{ChannelID: ch.ID, Key: "replay", Name: "Replay", Draft: "{}"}
	require.NoError(t, store.CreateScenario(ctx, sc))
	require.NoError(t, store.DB.Model(sc).Update("status", models.ScenarioActive).Error)
	doc := parse(t, replayDoc)

	line := &fakeLINE{now: time.Now}
	queue := fmt.Sprintf("record-%d", time.Now().UnixNano())
	w := worker.New(c, queue, &activities.Activities{Store: store, LINE: line}, sdkworker.Options{})
	require.NoError(t, w.Start())
	defer w.Stop()

	wid := workflows.EnrollmentWorkflowID(ch.ID, sc.Key, friend.UserID) + "/" + queue
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: wid, TaskQueue: queue,
		TypedSearchAttributes: workflows.StartSearchAttributes(ch.ID, sc.Key, friend.UserID, doc),
	}, workflows.EnrollmentWorkflow, workflows.EnrollmentInput{
		ChannelID: ch.ID, ScenarioID: sc.ID, ScenarioKey: sc.Key, Version: 1,
		FriendID: friend.ID, UserID: friend.UserID, Document: *doc, Revision: workflows.Revision,
	})
	require.NoError(t, err)
	require.NoError(t, store.RecordEnrollment(ctx, &models.Enrollment{ChannelID: ch.ID, ScenarioID: sc.ID, ScenarioVersion: 1,
		FriendID: friend.ID, WorkflowID: wid, RunID: run.GetRunID(), StartedAt: time.Now()}))

	state := func() workflows.State {
		v, err := c.QueryWorkflow(ctx, wid, run.GetRunID(), workflows.QueryState)
		require.NoError(t, err)
		var st workflows.State
		require.NoError(t, v.Get(&st))
		return st
	}
	waitFor := func(what string, ok func(workflows.State) bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			st := state()
			if ok(st) {
				return
			}
			require.True(t, time.Now().Before(deadline), "waiting for %s; state %+v", what, st)
			time.Sleep(100 * time.Millisecond)
		}
	}

	// At the wait_event: make the coming send quiet (quiet hours around
	// now in Tokyo), then click the m1 link.
	waitFor("the wait_event", func(st workflows.State) bool {
		return st.Status == workflows.StatusWaitingForEvent && st.Node == "we1"
	})
	now := time.Now().In(tokyo)
	qs, qe := now.Add(-time.Minute).Format("15:04"), now.Add(30*time.Minute).Format("15:04")
	_, err = store.UpdateChannel(ctx, ch.ID, models.ChannelPatch{QuietStart: &qs, QuietEnd: &qe})
	require.NoError(t, err)
	require.NoError(t, c.SignalWorkflow(ctx, wid, run.GetRunID(), workflows.SignalFriendEvent,
		workflows.FriendEvent{Type: "postback", Name: "not this", At: time.Now()}))
	require.NoError(t, c.SignalWorkflow(ctx, wid, run.GetRunID(), workflows.SignalFriendEvent,
		workflows.FriendEvent{Type: scenario.EventClick, ScenarioKey: sc.Key, Node: "m1", At: time.Now()}))

	// m2 is held by the quiet hours; the operator lifts them and the API
	// signals recheck.
	waitFor("the quiet hours hold", func(st workflows.State) bool {
		return st.Status == workflows.StatusHeld && st.HeldReason == activities.HoldQuietHours
	})
	empty := ""
	_, err = store.UpdateChannel(ctx, ch.ID, models.ChannelPatch{QuietStart: &empty, QuietEnd: &empty})
	require.NoError(t, err)
	require.NoError(t, c.SignalWorkflow(ctx, wid, run.GetRunID(), workflows.SignalControl, workflows.Control{Action: workflows.ControlRecheck}))

	var st workflows.State
	require.NoError(t, run.Get(ctx, &st))
	require.Equal(t, workflows.StatusCompleted, st.Status)
	require.Equal(t, 3, st.StepsSent)
	require.Equal(t, []string{"Hello Taro", "held by quiet hours", "last"}, func() []string {
		var out []string
		for _, a := range line.Delivered() {
			out = append(out, messageText(t, a.Messages[0]))
		}
		return out
	}())
	outcomes := pathOf(st)
	require.Contains(t, outcomes, "b1:case 1")
	require.Contains(t, outcomes, "we1:event")

	hist := &historypb.History{}
	iter := c.GetWorkflowHistory(ctx, wid, run.GetRunID(), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(t, err)
		hist.Events = append(hist.Events, ev)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(hist)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Dir(recordedHistory), 0o755))
	require.NoError(t, os.WriteFile(recordedHistory, append(b, '\n'), 0o644))
	t.Logf("wrote %s: %d events, path %v", recordedHistory, len(hist.Events), outcomes)
}
