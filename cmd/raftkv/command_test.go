package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/raftnode"
)

// runCommand runs raftkv with args and returns what it printed on standard
// output and the error it ended with.
func runCommand(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var out bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(io.Discard)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// closedEndpoint returns the URL of a loopback port where nothing listens:
// it was bound on port 0 and closed.
func closedEndpoint(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

// TestBadCommandLines checks that every bad command line is a usage error
// (exit 2) with a message in the command line's terms, except serve's,
// which exits 1 like its other refusals.
func TestBadCommandLines(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"bogus"}, exitUsage, `unknown command "bogus"`},
		{[]string{"--bogus"}, exitUsage, "unknown flag: --bogus"},
		{[]string{"version", "extra"}, exitUsage, "version takes no arguments; got 1 argument(s)"},
		{[]string{"cert"}, exitUsage, "cert needs a command: create-ca, create-node or create-client"},
		{[]string{"cert", "bogus"}, exitUsage, `unknown command "bogus" for "raftkv cert"`},
		{[]string{"member"}, exitUsage, "member needs a command"},
		{[]string{"get"}, exitUsage, "get takes KEY; got 0 argument(s)"},
		{[]string{"get", "k", "--timeout", "bogus"}, exitUsage, `--timeout "bogus": want a duration`},
		{[]string{"serve", "--port", "abc"}, exitError, `--port "abc": want an integer`},
		{[]string{"txn", "extra"}, exitUsage, "txn takes no arguments; got 1 argument(s)"},
		{[]string{"data"}, exitUsage, "data needs a command: verify"},
		{[]string{"lease"}, exitUsage, "lease needs a command"},
		{[]string{"lease", "grant"}, exitUsage, "lease grant takes TTL; got 0 argument(s)"},
		{[]string{"lease", "grant", "soon"}, exitUsage, `TTL "soon" is neither a duration`},
		{[]string{"lease", "revoke", "x"}, exitUsage, `lease id "x" must be a positive integer`},
		{[]string{"lock"}, exitUsage, "lock takes NAME [-- COMMAND [ARGS...]]; got 0 argument(s)"},
		{[]string{"lock", "a", "b"}, exitUsage, "lock takes NAME, then -- and the command to run"},
		{[]string{"elect", "a"}, exitUsage, "elect takes NAME and PROPOSAL, or --listen NAME"},
		{[]string{"elect", "--listen", "a", "b"}, exitUsage, "elect --listen takes only NAME"},
		{[]string{"data", "verify"}, exitUsage, "--data-dir is required"},
		{[]string{"data", "verify", "--data-dir", "d", "-o", "yaml"}, exitUsage, `--output "yaml": use text or json`},
	} {
		_, err := runCommand(t, tc.args...)
		if code := exitStatus(err); code != tc.code || err == nil || err.Error() != tc.want && !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("raftkv %s: exit %d, %v; want exit %d, %q", strings.Join(tc.args, " "), code, err, tc.code, tc.want)
		}
	}
}

// TestDataVerifyWithoutData checks that data verify refuses a missing dir
// and one without a WAL as an error (exit 1) that says so, not as damage.
func TestDataVerifyWithoutData(t *testing.T) {
	for _, dir := range []string{t.TempDir() + "/absent", t.TempDir()} {
		out, err := runCommand(t, "data", "verify", "--data-dir", dir)
		if code := exitStatus(err); code != exitError || !errors.Is(err, raftnode.ErrNoData) || out != "" {
			t.Errorf("data verify on %s: exit %d, %v, output %q; want exit 1, no raftkv data, no output", dir, code, err, out)
		}
	}
}
