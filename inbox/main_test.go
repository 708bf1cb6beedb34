package inbox_test

import (
	"os"
	"testing"

	"github.com/stepcast/stepcast/internal/testenv"
)

// TestMain stops the Temporal dev server that a test may have started.
func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m))
}
