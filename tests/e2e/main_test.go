//go:build unix

package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// testVersion is stamped into the binary the way the Makefile stamps
// releases, so TestVersion checks the mechanism and not just the default.
const testVersion = "v0.0.0-e2e"

// raftkvBin is the binary built by TestMain; it is set once, before any test
// runs, and only read afterwards.
var raftkvBin string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "raftkv-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	raftkvBin = filepath.Join(dir, "raftkv")
	args := []string{"build", "-ldflags", "-X main.version=" + testVersion, "-o", raftkvBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	// go test puts its own GOROOT/bin first in PATH, so this is the same
	// toolchain that builds the tests.
	build := exec.Command("go", append(args, "./cmd/raftkv")...)
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build raftkv:", err)
		return 1
	}
	return m.Run()
}

// moduleRoot finds the directory of go.mod above the working directory, which
// go test sets to this package's directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
