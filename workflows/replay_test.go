package workflows_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/workflows"
)

// TestReplayRecordedHistories guards the workflow's determinism: every
// history recorded from a real server (testdata/*.history.json, written by
// `make record-history`) must replay on the current workflow code without a
// non-determinism error. Running enrollments live for months; a
// change of the code that would make their histories replay differently
// must instead be versioned (workflow.GetVersion). Re-record a history only
// when the scenario it covers changes, never to make this test pass.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.history.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded history in testdata/: run make record-history")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			replayer := worker.NewWorkflowReplayer()
			replayer.RegisterWorkflowWithOptions(workflows.Enrollment, workflow.RegisterOptions{Name: workflows.EnrollmentWorkflow})
			require.NoError(t, replayer.ReplayWorkflowHistoryFromJSONFile(log.NewStructuredLogger(testenv.Logger()), file))
		})
	}
}
