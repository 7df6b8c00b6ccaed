//go:build unix

package robustness

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/raftkv/raftkv/internal/proctest"
)

// TestMain removes the binary the tests built and fails the package if any
// goroutine outlives the tests: every proxy, workload client and connection
// must have stopped.
func TestMain(m *testing.M) {
	code := m.Run()
	serverBinary.Remove()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "robustness: goroutines outlived the tests:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// serverBinary is the raftkv binary, built on first use so that the model's
// tests and -short runs do not pay for a build.
var serverBinary proctest.Binary
