package monitoring

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives the tests: every
// process waiter and connection must have ended.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
