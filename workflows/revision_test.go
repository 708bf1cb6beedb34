package workflows_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/stepcast/stepcast/workflows"
)

// twoSteps is a wait and a message, enough to see how a step is sent.
const twoSteps = `
name: revision
start: {type: follow}
nodes:
  - {id: w1, type: wait, next: m1, wait: {days: 1, at: "10:00"}}
  - {id: m1, type: message, message: {messages: [{type: text, text: hi}]}}
`

// activityCalls runs doc and lists the activities and local activities the
// run started, by name, with GetVersion of the Deliver change answering
// version.
func activityCalls(t *testing.T, revision int, version workflow.Version) []string {
	f := newFixture(t, jst(2026, 1, 30, 15, 0))
	f.revision = revision
	f.env.OnGetVersion("deliver-local-activity", workflow.DefaultVersion, 1).Return(version)
	var calls []string
	f.env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
		calls = append(calls, info.ActivityType.Name)
	})
	f.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		calls = append(calls, info.ActivityType.Name)
	})
	st := f.run(parse(t, twoSteps))
	require.Equal(t, workflows.StatusCompleted, st.Status)
	require.Len(t, f.line.Delivered(), 1)
	return calls
}

// A run started with a Revision delivers with the Deliver local activity
// and never asks GetVersion, so its history has no version marker and no
// TemporalChangeVersion upsert: here GetVersion would answer "before the
// change", and the run must not listen.
func TestEnrollmentWithRevisionSkipsGetVersion(t *testing.T) {
	calls := activityCalls(t, workflows.Revision, workflow.DefaultVersion)
	require.Equal(t, []string{"Deliver", "FinishEnrollment"}, calls)
}

// A run started before revisions were passed (Revision 0) still decides by
// GetVersion: where its history says "before the change", it replays the
// gate local activity and the SendStep activity; otherwise Deliver.
func TestEnrollmentWithoutRevisionAsksGetVersion(t *testing.T) {
	require.Equal(t, []string{"Gate", "SendStep", "FinishEnrollment"}, activityCalls(t, 0, workflow.DefaultVersion))
	require.Equal(t, []string{"Deliver", "FinishEnrollment"}, activityCalls(t, 0, 1))
}
