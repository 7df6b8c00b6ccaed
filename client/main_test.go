package client_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// server, watcher and client connection must have stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
