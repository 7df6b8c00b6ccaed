//go:build unix

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/internal/proctest"
)

// docBlock returns the sh code block of a document that contains marker,
// so that a test runs what a reader pastes.
func docBlock(t *testing.T, doc, marker string) string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("..", "..", doc))
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range strings.Split(string(text), "```sh\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		if strings.Contains(block, marker) {
			return block
		}
	}
	t.Fatalf("%s has no sh block with %q", doc, marker)
	return ""
}

// runDocScript runs script with bash in a directory where ./bin/raftkv is
// the binary under test, with env added to a clean environment, and returns
// its standard output.
func runDocScript(t *testing.T, script string, env ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(server.Path(t), filepath.Join(dir, "bin", "raftkv")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(proctest.CleanEnv(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bash: %v; stderr: %s", err, stderr.String())
	}
	return string(out)
}

// TestCLIExitCodeScript runs docs/CLI.md's exit-code example as written and
// checks that each outcome reaches its branch: a script that read $? after
// `if !` would only ever see 0.
func TestCLIExitCodeScript(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	script := docBlock(t, "docs/CLI.md", "case $? in")
	c := startCluster(t, 3)
	endpoints := "RAFTKV_ENDPOINTS=" + clientURLs(c.members...)
	for _, tc := range []struct {
		what string
		env  string
		want string
	}{
		{"first put", endpoints, "we hold the lock"},
		{"second put", endpoints, "someone else holds the lock"},
		{"no cluster", "RAFTKV_ENDPOINTS=" + closedEndpoint(t), "cluster unavailable, try again"},
	} {
		if got := strings.TrimSpace(runDocScript(t, script, tc.env, "RAFTKV_TIMEOUT=2s")); got != tc.want {
			t.Errorf("%s: the script printed %q, want %q", tc.what, got, tc.want)
		}
	}
}

// closedEndpoint is a client URL where nothing listens.
func closedEndpoint(t *testing.T) string {
	return "http://127.0.0.1:" + strconv.Itoa(freePorts(t, 1)[0])
}
