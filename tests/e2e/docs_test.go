//go:build unix

package e2e

import (
	"context"
	"fmt"
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
	return runDocScriptIn(t, t.TempDir(), script, env...)
}

// runDocScriptIn is runDocScript in dir, for scripts that work on files
// an earlier one left.
func runDocScriptIn(t *testing.T, dir, script string, env ...string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "bin", "raftkv")); os.IsNotExist(err) {
		if err := os.Symlink(server.Path(t), filepath.Join(dir, "bin", "raftkv")); err != nil {
			t.Fatal(err)
		}
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

// TestREADMEVersionedAPIExample runs the README's versioned-API example as
// written against a three-node cluster, its ports replaced by the cluster's
// and its last line, a watch that runs until Ctrl-C, left out: the captured
// revision makes the compare-and-swap succeed once and then fail.
func TestREADMEVersionedAPIExample(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("the example uses curl, which is not installed")
	}
	block := docBlock(t, "README.md", `If-Match: \"$rev\"`)
	c := startCluster(t, 3)
	var lines []string
	for line := range strings.Lines(block) {
		if strings.Contains(line, "until Ctrl-C") {
			continue
		}
		for i, port := range []string{"12380", "22380", "32380"} {
			line = strings.ReplaceAll(line, "127.0.0.1:"+port, "127.0.0.1:"+strconv.Itoa(c.members[i].port))
		}
		lines = append(lines, line)
	}
	out := strings.Split(strings.TrimSpace(runDocScript(t, strings.Join(lines, ""))), "\n")
	if len(out) != 5 {
		t.Fatalf("the example printed %q, want 5 lines", out)
	}
	rev, err := strconv.ParseUint(out[0], 10, 64)
	if err != nil {
		t.Fatalf("the captured revision is %q: %v", out[0], err)
	}
	if want := fmt.Sprintf(`"mod_revision":%d,`, rev+1); !strings.Contains(out[1], want) {
		t.Errorf("the compare-and-swap answered %s, want the write at revision %d", out[1], rev+1)
	}
	if !strings.Contains(out[2], `"code":"precondition_failed"`) {
		t.Errorf("the stale compare-and-swap answered %s, want precondition_failed", out[2])
	}
	if !strings.Contains(out[3], `"value":"cmVk"`) { // base64 of red
		t.Errorf("the listing is %s, want config/color = red", out[3])
	}
	if !strings.Contains(out[4], `"key":"config/color","value":"red"`) {
		t.Errorf("the listing with encoding=text is %s, want config/color = red as text", out[4])
	}
}
