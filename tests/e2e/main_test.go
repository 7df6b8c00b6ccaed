//go:build unix

package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/raftkv/raftkv/internal/proctest"
)

// testVersion is stamped into the binary the way the Makefile stamps
// releases, so TestVersion checks the mechanism and not just the default.
const testVersion = "v0.0.0-e2e"

// server is the raftkv binary the tests run. TestMain builds it before any
// test runs, so that a broken build fails once and not in every test.
var server = proctest.Binary{BuildFlags: []string{"-ldflags", "-X main.version=" + testVersion}}

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	defer server.Remove()
	if _, err := server.Build(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}
