package workflows_test

import (
	"os"
	"testing"

	"github.com/stepcast/stepcast/internal/testenv"
)

// TestMain stops the Temporal dev server that the history recorder may have
// started (see record_history_test.go).
func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m))
}
