package proctest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Binary is the raftkv binary that a test binary's tests start. It is built
// on first use, so that tests needing no server (and -short runs) do not pay
// for a build, and only once, however many tests ask for it.
type Binary struct {
	// BuildFlags go to go build, for example -ldflags to stamp a version.
	BuildFlags []string

	once sync.Once
	dir  string
	path string
	err  error
}

// Build builds the binary the first time it is called and returns its path,
// or why it could not be built, every time.
func (b *Binary) Build() (string, error) {
	b.once.Do(func() { b.path, b.err = b.build() })
	return b.path, b.err
}

// Path is Build for a test: a binary that cannot be built fails it.
func (b *Binary) Path(t testing.TB) string {
	t.Helper()
	path, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// Remove deletes the binary. TestMain calls it once the tests have run.
func (b *Binary) Remove() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

func (b *Binary) build() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	b.dir, err = os.MkdirTemp("", "raftkv-bin-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(b.dir, "raftkv")
	args := append([]string{"build"}, b.BuildFlags...)
	args = append(args, "-o", path)
	if RaceEnabled {
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

// moduleRoot finds the directory of go.mod above the working directory, which
// go test sets to the directory of the package under test.
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
