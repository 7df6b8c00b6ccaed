//go:build unix

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/internal/proctest"
)

// cliOutput is any line of `raftkv -o json` output: a key, a write's result
// or an event. Keys and values are base64, which encoding/json decodes.
type cliOutput struct {
	Type           string  `json:"type"`
	Key            []byte  `json:"key"`
	Value          *[]byte `json:"value"`
	CreateRevision uint64  `json:"create_revision"`
	ModRevision    uint64  `json:"mod_revision"`
	Version        uint64  `json:"version"`
	Revision       uint64  `json:"revision"`
	Created        bool    `json:"created"`
	Deleted        int64   `json:"deleted"`
}

// decodeLines decodes one JSON object per line.
func decodeLines(t *testing.T, out string) []cliOutput {
	t.Helper()
	var objs []cliOutput
	for line := range strings.Lines(out) {
		var o cliOutput
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("output line %q is not JSON: %v", line, err)
		}
		objs = append(objs, o)
	}
	return objs
}

// clientURLs are the --endpoints of members ms.
func clientURLs(ms ...*member) string {
	var urls []string
	for _, m := range ms {
		urls = append(urls, "http://127.0.0.1:"+strconv.Itoa(m.port))
	}
	return strings.Join(urls, ",")
}

// cliRunner runs client commands against a cluster, with its endpoints in
// RAFTKV_ENDPOINTS.
type cliRunner struct {
	dir string
	env []string
}

func (r cliRunner) run(t *testing.T, args ...string) result {
	t.Helper()
	return runRaftkv(t, r.dir, r.env, args...)
}

// ok runs a command that must succeed silently on stderr and returns its
// standard output.
func (r cliRunner) ok(t *testing.T, args ...string) string {
	t.Helper()
	res := r.run(t, args...)
	if res.code != 0 || res.stderr != "" {
		t.Fatalf("raftkv %s: exit %d, stdout %q, stderr %q; want exit 0", strings.Join(args, " "), res.code, res.stdout, res.stderr)
	}
	return res.stdout
}

// fails runs a command that must exit with code, print nothing on stdout
// and one line on stderr containing want; a usage error (2) follows it
// with the command's usage line and where to read more.
func (r cliRunner) fails(t *testing.T, code int, want string, args ...string) {
	t.Helper()
	res := r.run(t, args...)
	lines := strings.Split(strings.TrimRight(res.stderr, "\n"), "\n")
	wantLines := 1
	if code == 2 {
		wantLines = 3
		if len(lines) != 3 || !strings.HasPrefix(lines[1], "Usage: raftkv ") || !strings.Contains(lines[2], "--help") {
			t.Errorf("raftkv %s: stderr %q; want the usage after the error", strings.Join(args, " "), res.stderr)
		}
	}
	for _, pkg := range []string{"client:", "server:", "kvstore:", "raftnode:", "httpapi:", `\"`} {
		if strings.Contains(res.stderr, pkg) {
			// What a user reads names no package and quotes once.
			t.Errorf("raftkv %s: stderr %q contains %q", strings.Join(args, " "), res.stderr, pkg)
		}
	}
	if res.code != code || res.stdout != "" || len(lines) != wantLines || !strings.Contains(lines[0], want) {
		t.Fatalf("raftkv %s: exit %d, stdout %q, stderr %q; want exit %d and one line with %q",
			strings.Join(args, " "), res.code, res.stdout, res.stderr, code, want)
	}
}

// withStdin runs a command with stdin as its standard input.
func (r cliRunner) withStdin(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, server.Path(t), args...)
	cmd.Dir = r.dir
	cmd.Env = append(proctest.CleanEnv(), r.env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run raftkv: %v", err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// waitOutput waits until a running command's output (stdout and stderr) has
// at least n lines, and returns them.
func waitOutput(t *testing.T, p *proc, n int) []string {
	t.Helper()
	var lines []string
	err := eventually(leaderTimeout, func() error {
		lines = strings.Split(strings.TrimSuffix(p.Log(), "\n"), "\n")
		if p.Log() == "" {
			lines = nil
		}
		if len(lines) < n {
			if p.Exited() {
				return fmt.Errorf("%s exited with code %d: %q", p.Name, p.ExitCode(), p.Log())
			}
			return fmt.Errorf("%s printed %d lines, want %d: %q", p.Name, len(lines), n, p.Log())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// interrupt sends SIGINT to a watch and checks that it exits 0.
func interrupt(t *testing.T, p *proc) {
	t.Helper()
	if err := p.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if !p.WaitExit(stopTimeout) {
		t.Fatalf("%s did not exit within %v of SIGINT", p.Name, stopTimeout)
	}
	if code := p.ExitCode(); code != 0 {
		t.Fatalf("%s exited with code %d after SIGINT, want 0: %q", p.Name, code, p.Log())
	}
}

// TestCLI drives put, get, del, list and watch against a three-process
// cluster: text and JSON output, exit codes, and failover past a killed
// node.
func TestCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := startCluster(t, 3, "--watch-history", "20")
	n1, n2, n3 := c.members[0], c.members[1], c.members[2]
	cli := cliRunner{dir: t.TempDir(), env: []string{"RAFTKV_ENDPOINTS=" + clientURLs(n1, n2, n3)}}

	t.Run("put and get", func(t *testing.T) {
		rev, err := strconv.ParseUint(strings.TrimSuffix(cli.ok(t, "put", "greeting", "hello"), "\n"), 10, 64)
		if err != nil {
			t.Fatalf("put printed no revision: %v", err)
		}
		if got := cli.ok(t, "get", "greeting"); got != "hello\n" {
			t.Fatalf("get printed %q, want %q", got, "hello\n")
		}
		if got := cli.ok(t, "get", "greeting", "--consistency", "serializable", "--endpoints", clientURLs(n1)); got != "hello\n" {
			t.Fatalf("serializable get on node 1 printed %q", got)
		}
		objs := decodeLines(t, cli.ok(t, "get", "greeting", "-o", "json"))
		if len(objs) != 1 || string(objs[0].Key) != "greeting" || objs[0].Value == nil || string(*objs[0].Value) != "hello" ||
			objs[0].ModRevision != rev || objs[0].CreateRevision != rev || objs[0].Version != 1 || objs[0].Revision < rev {
			t.Fatalf("get -o json = %+v, want greeting=hello at revision %d", objs, rev)
		}
		objs = decodeLines(t, cli.ok(t, "put", "greeting", "hi again", "-o", "json"))
		if len(objs) != 1 || string(objs[0].Key) != "greeting" || objs[0].Created || objs[0].Version != 2 || objs[0].Revision <= rev {
			t.Fatalf("put -o json = %+v", objs)
		}

		// A binary value from standard input comes back byte for byte.
		value := []byte("line 1\n\x00\xff tail")
		if r := cli.withStdin(t, value, "put", "blob"); r.code != 0 {
			t.Fatalf("put from stdin: exit %d, stderr %q", r.code, r.stderr)
		}
		objs = decodeLines(t, cli.ok(t, "get", "blob", "-o", "json"))
		if len(objs) != 1 || objs[0].Value == nil || !bytes.Equal(*objs[0].Value, value) {
			t.Fatalf("get -o json of a binary value = %+v", objs)
		}
		// Keys with URL syntax in them are keys like any other.
		cli.ok(t, "put", "a b/../?#%", "odd")
		if got := cli.ok(t, "get", "a b/../?#%"); got != "odd\n" {
			t.Fatalf("get of an odd key printed %q", got)
		}
	})

	t.Run("exit codes", func(t *testing.T) {
		cli.fails(t, 3, "key not found", "get", "missing")
		cli.fails(t, 3, "key not found", "del", "missing")

		first := strings.TrimSpace(cli.ok(t, "put", "lock", "owner-1", "--create-only"))
		cli.fails(t, 4, "mod revision is "+first, "put", "lock", "owner-2", "--create-only")
		cli.fails(t, 4, "mod revision is "+first, "put", "lock", "owner-2", "--if-match", first+"0")
		second := strings.TrimSpace(cli.ok(t, "put", "lock", "owner-2", "--if-match", first))
		cli.fails(t, 4, "mod revision is "+second, "del", "lock", "--if-match", first)
		cli.fails(t, 4, "does not exist", "put", "nolock", "x", "--if-match", "*")
		if got := cli.ok(t, "del", "lock", "--if-match", second); got != "1\n" {
			t.Fatalf("conditional del printed %q, want 1", got)
		}

		cli.fails(t, 2, "put takes KEY [VALUE]; got 0 argument(s)", "put")
		cli.fails(t, 2, "get takes KEY; got 0 argument(s)", "get")
		cli.fails(t, 2, "unknown flag: --bogus", "get", "k", "--bogus")
		cli.fails(t, 2, "--output", "get", "k", "-o", "yaml")
		cli.fails(t, 2, "exclude each other", "put", "k", "v", "--create-only", "--if-match", "3")
		cli.fails(t, 2, "--if-match", "del", "k", "--if-match", "abc")
		cli.fails(t, 2, "--endpoints", "get", "k", "--endpoints", "127.0.0.1:1")

		// Nothing listens: unavailable, nothing was written.
		r := runRaftkv(t, cli.dir, nil, "put", "k", "v", "--endpoints", "http://127.0.0.1:1,http://127.0.0.1:2", "--timeout", "3s")
		if r.code != 5 || !strings.Contains(r.stderr, "unavailable") {
			t.Fatalf("put with nothing listening: exit %d, stderr %q; want 5", r.code, r.stderr)
		}
		// Only the shared flags come from the environment: RAFTKV_PREFIX
		// must not turn a delete of one key into a range delete.
		cli.ok(t, "put", "envkey", "1")
		cli.ok(t, "put", "envkey2", "2")
		env := cliRunner{dir: cli.dir, env: append(cli.env, "RAFTKV_PREFIX=true", "RAFTKV_OUTPUT=json")}
		objs := decodeLines(t, env.ok(t, "del", "envkey"))
		if len(objs) != 1 || objs[0].Deleted != 1 {
			t.Fatalf("del with RAFTKV_PREFIX and RAFTKV_OUTPUT=json set printed %+v", objs)
		}
		cli.ok(t, "get", "envkey2")
	})

	t.Run("list and range delete", func(t *testing.T) {
		var want strings.Builder
		for i := range 7 {
			k := fmt.Sprintf("list/k%d", i)
			cli.ok(t, "put", k, "v"+strconv.Itoa(i))
			fmt.Fprintf(&want, "%s\nv%d\n", k, i)
		}
		cli.ok(t, "put", "listx", "outside")
		if got := cli.ok(t, "list", "list/", "--page-size", "3"); got != want.String() {
			t.Fatalf("list printed %q, want %q", got, want.String())
		}
		if got := cli.ok(t, "list", "list/", "--keys-only", "--limit", "2"); got != "list/k0\nlist/k1\n" {
			t.Fatalf("list --keys-only --limit 2 printed %q", got)
		}
		objs := decodeLines(t, cli.ok(t, "list", "list/", "-o", "json", "--page-size", "2", "--limit", "5"))
		if len(objs) != 5 {
			t.Fatalf("list -o json --limit 5 printed %d objects", len(objs))
		}
		for i, o := range objs {
			if string(o.Key) != fmt.Sprintf("list/k%d", i) || o.Value == nil || string(*o.Value) != "v"+strconv.Itoa(i) || o.Revision == 0 || o.Version != 1 {
				t.Fatalf("list -o json object %d = %+v", i, o)
			}
		}
		if got := cli.ok(t, "del", "list/", "--prefix"); got != "7\n" {
			t.Fatalf("del --prefix printed %q, want 7", got)
		}
		if got := cli.ok(t, "list", "list/"); got != "" {
			t.Fatalf("list after del --prefix printed %q", got)
		}
		if got := cli.ok(t, "del", "list/", "--prefix"); got != "0\n" {
			t.Fatalf("del --prefix of nothing printed %q, want 0", got)
		}
		if got := cli.ok(t, "get", "listx"); got != "outside\n" {
			t.Fatalf("a key outside the prefix: %q", got)
		}
	})

	t.Run("watch", func(t *testing.T) {
		first := strings.TrimSpace(cli.ok(t, "put", "w/a", "1"))
		// From a known revision, so the first event does not depend on when
		// the watch connects.
		js := startProc(t, "watch-json", cli.dir, cli.env, "watch", "w/", "--prefix", "--from", first, "-o", "json")
		text := startProc(t, "watch-text", cli.dir, cli.env, "watch", "w/a", "--from", first)
		waitOutput(t, js, 1)
		cli.ok(t, "put", "w/b", "2")
		cli.ok(t, "put", "w/a", "")
		cli.ok(t, "del", "w/a")
		lines := waitOutput(t, js, 4)
		objs := decodeLines(t, strings.Join(lines, "\n"))
		var got []string
		for _, o := range objs {
			v := "-"
			if o.Value != nil {
				v = string(*o.Value)
			}
			got = append(got, fmt.Sprintf("%s %s %q", o.Type, o.Key, v))
		}
		want := []string{`put w/a "1"`, `put w/b "2"`, `put w/a ""`, `delete w/a "-"`}
		if strings.Join(got, "; ") != strings.Join(want, "; ") {
			t.Fatalf("watch -o json printed %q, want %q", got, want)
		}
		if strconv.FormatUint(objs[0].Revision, 10) != first || objs[3].Revision <= objs[2].Revision {
			t.Fatalf("watch revisions: %+v", objs)
		}
		lines = waitOutput(t, text, 9)
		if got, want := strings.Join(lines, "\n"), "PUT\nw/a\n1\nPUT\nw/a\n\nDELETE\nw/a\n"; got != want {
			t.Fatalf("watch printed %q, want %q", got, want)
		}
		interrupt(t, js)
		interrupt(t, text)
	})

	t.Run("watch compacted", func(t *testing.T) {
		// More changes than the nodes' --watch-history keeps.
		for i := range 25 {
			mustPut(t, n2, "cmp", strconv.Itoa(i))
		}
		cli.fails(t, 1, "compacted", "watch", "cmp", "--from", "1")
	})

	t.Run("failover", func(t *testing.T) {
		n1.proc.Kill(t)
		// Wait until the survivors commit, whoever led before.
		c.waitCommit(n2)
		all := clientURLs(n1, n2, n3)
		rev := strings.TrimSpace(cli.ok(t, "put", "fo", "after the kill", "--endpoints", all))
		if got := cli.ok(t, "get", "fo", "--endpoints", all); got != "after the kill\n" {
			t.Fatalf("get with node 1 killed printed %q", got)
		}
		if got := cli.ok(t, "list", "fo", "--keys-only", "--endpoints", all); got != "fo\n" {
			t.Fatalf("list with node 1 killed printed %q", got)
		}
		w := startProc(t, "watch-failover", cli.dir, nil, "watch", "fo", "--from", rev, "--endpoints", all)
		if lines := waitOutput(t, w, 3); strings.Join(lines, "\n") != "PUT\nfo\nafter the kill" {
			t.Fatalf("watch with node 1 killed printed %q", lines)
		}
		interrupt(t, w)
		r := runRaftkv(t, cli.dir, nil, "get", "fo", "--endpoints", clientURLs(n1), "--timeout", "3s")
		if r.code != 5 {
			t.Fatalf("get from the killed node only: exit %d, stderr %q; want 5", r.code, r.stderr)
		}
	})
}
