//go:build unix

package robustness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// TestMain removes the binary the tests built and fails the package if any
// goroutine outlives the tests: every proxy, workload client and connection
// must have stopped.
func TestMain(m *testing.M) {
	code := m.Run()
	serverBinary.cleanup()
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
var serverBinary binaryBuild

type binaryBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// get returns the binary's path, building it with -race when the tests run
// with -race, so that a data race in a server fails the history.
func (b *binaryBuild) get(t testing.TB) string {
	t.Helper()
	b.once.Do(func() { b.path, b.err = b.build() })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func (b *binaryBuild) build() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	b.dir, err = os.MkdirTemp("", "raftkv-robustness-bin-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(b.dir, "raftkv")
	args := []string{"build", "-o", path}
	if raceEnabled {
		args = append(args, "-race")
	}
	// go test puts its own GOROOT/bin first in PATH, so this is the same
	// toolchain that builds the tests.
	cmd := exec.Command("go", append(args, "./cmd/raftkv")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build raftkv: %w\n%s", err, out)
	}
	return path, nil
}

func (b *binaryBuild) cleanup() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
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
