//go:build unix

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/internal/testcerts"
)

// TestVersion checks `raftkv version` against the version stamped at build.
func TestVersion(t *testing.T) {
	r := runRaftkv(t, t.TempDir(), nil, "version")
	if r.code != 0 || r.stdout != "raftkv "+testVersion+"\n" || r.stderr != "" {
		t.Fatalf("raftkv version: exit %d, stdout %q, stderr %q; want exit 0, stdout %q",
			r.code, r.stdout, r.stderr, "raftkv "+testVersion+"\n")
	}
}

// checkRejected asserts that a command failed the way the README promises
// for a bad command line: exit code 1, nothing on stdout, one line on stderr
// naming the problem.
func checkRejected(t *testing.T, r result, want string) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("exit code %d, want 1", r.code)
	}
	if r.stdout != "" {
		t.Errorf("stdout %q, want nothing", r.stdout)
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if len(lines) != 1 || lines[0] == "" {
		t.Errorf("stderr has %d lines, want one:\n%s", len(lines), r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q does not mention %q", r.stderr, want)
	}
}

// TestServeRejectsInvalidConfig starts `raftkv serve` with bad settings and
// checks that each fails at once, clearly, and without creating its data dir
// (neither the one given nor the default raftkv-<id> in the working dir).
func TestServeRejectsInvalidConfig(t *testing.T) {
	ports := freePorts(t, 5)
	peer := func(i int) string { return "http://127.0.0.1:" + strconv.Itoa(ports[i]) }
	cluster3 := strings.Join([]string{peer(0), peer(1), peer(2)}, ",")
	client := strconv.Itoa(ports[3])

	// Ports held by the test for the "in use" cases.
	busyClient, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Parallel subtests run after this function returns: hold the ports
	// until they are done.
	t.Cleanup(func() { busyClient.Close() })
	busyPeer, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busyPeer.Close() })
	busyClientPort := strconv.Itoa(busyClient.Addr().(*net.TCPAddr).Port)
	certs := testcerts.New(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	httpsPeer := "https://127.0.0.1:" + strconv.Itoa(ports[4])
	busyPeerURL := "http://" + busyPeer.Addr().String()

	tests := []struct {
		name string
		env  []string
		args []string // after serve; --data-dir is added
		want string   // a part of the error line
	}{
		{"id outside cluster", nil, []string{"--id", "4", "--cluster", cluster3, "--port", client}, "id 4 is outside the cluster list of 3"},
		{"id zero", nil, []string{"--id", "0", "--cluster", cluster3, "--port", client}, "id must be positive"},
		{"peer URL without scheme", nil, []string{"--id", "1", "--cluster", peer(0) + ",127.0.0.1:" + strconv.Itoa(ports[1]), "--port", client}, "cluster entry 2"},
		{"peer URL without port", nil, []string{"--id", "1", "--cluster", peer(0) + ",http://127.0.0.1", "--port", client}, "needs a host and a port"},
		{"peer URL with path", nil, []string{"--id", "1", "--cluster", peer(0) + "/raft", "--port", client}, "scheme://host:port and nothing else"},
		{"peer URL not http", nil, []string{"--id", "1", "--cluster", "ftp://127.0.0.1:" + strconv.Itoa(ports[0]), "--port", client}, "scheme must be http or https"},
		{"empty cluster", nil, []string{"--id", "1", "--cluster", "", "--port", client}, "invalid peer URL"},
		{"duplicate URLs", nil, []string{"--id", "1", "--cluster", peer(0) + "," + peer(1) + "," + peer(0), "--port", client}, "peers 1 and 3 share the URL"},
		{"client port in use", nil, []string{"--id", "1", "--cluster", peer(0), "--port", busyClientPort}, "--port: 127.0.0.1:" + busyClientPort + ": address already in use; stop what listens there"},
		{"peer port in use", nil, []string{"--id", "1", "--cluster", busyPeerURL, "--port", client}, "--cluster (this node's peer URL): "},
		{"port out of range", nil, []string{"--id", "1", "--cluster", peer(0), "--port", "70000"}, "--port 70000"},
		{"bad log level", nil, []string{"--id", "1", "--cluster", peer(0), "--port", client, "--log-level", "loud"}, "--log-level"},
		{"bad request timeout", nil, []string{"--id", "1", "--cluster", peer(0), "--port", client, "--request-timeout", "0s"}, "--request-timeout"},
		{"unknown flag", nil, []string{"--id", "1", "--cluster", peer(0), "--port", client, "--peers", peer(0)}, "unknown flag: --peers"},
		{"positional argument", nil, []string{"--id", "1", "--cluster", peer(0), "--port", client, "extra"}, "extra"},
		{"id from env outside cluster", []string{"RAFTKV_ID=4", "RAFTKV_CLUSTER=" + cluster3, "RAFTKV_PORT=" + client}, nil, "id 4 is outside the cluster list of 3"},
		{"bad env value", []string{"RAFTKV_PORT=http"}, []string{"--id", "1", "--cluster", peer(0)}, "RAFTKV_PORT"},
		{"cert without key", nil, []string{"--id", "1", "--cluster", peer(0), "--port", client, "--cert-file", certs.NodeCert}, "--cert-file and --key-file go together"},
		{"client cert auth without CA", nil, []string{"--id", "1", "--cluster", peer(0), "--port", client, "--cert-file", certs.NodeCert, "--key-file", certs.NodeKey, "--client-cert-auth"}, "--client-cert-auth needs --trusted-ca-file"},
		{"missing cert file", nil, []string{"--id", "1", "--cluster", peer(0), "--port", client, "--cert-file", missing, "--key-file", certs.NodeKey}, "no such file"},
		{"https peers without peer TLS", nil, []string{"--id", "1", "--cluster", httpsPeer, "--port", client}, ": https, but no peer certificate is configured"},
		{"peer TLS with http peers", nil, []string{"--id", "1", "--cluster", peer(0), "--port", client, "--peer-cert-file", certs.NodeCert, "--peer-key-file", certs.NodeKey}, ": plain http, but peer TLS is configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cwd := t.TempDir()
			dataDir := filepath.Join(t.TempDir(), "data")
			args := append([]string{"serve", "--data-dir", dataDir}, tt.args...)
			r := runRaftkv(t, cwd, tt.env, args...)
			checkRejected(t, r, tt.want)
			if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
				t.Errorf("the data dir was created (stat: %v)", err)
			}
			if names := listDir(t, cwd); len(names) != 0 {
				t.Errorf("the working dir is not empty: %v", names)
			}
		})
	}
}

// TestServeRejectsOtherMembersDataDir starts member 2 on member 1's data dir:
// it must refuse, name the member the dir belongs to, and leave the dir as it
// was.
func TestServeRejectsOtherMembersDataDir(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	var one *member
	for attempt := 1; ; attempt++ {
		ports := freePorts(t, 2)
		one = &member{name: "node1", id: 1, peerURL: "http://127.0.0.1:" + strconv.Itoa(ports[0]), port: ports[1], dataDir: dataDir}
		one.cluster = one.peerURL
		c := &cluster{t: t, dir: t.TempDir(), members: []*member{one}}
		c.launch(one)
		err := c.waitUp(one)
		if err == nil {
			break
		}
		if attempt == startAttempts {
			t.Fatal(err)
		}
		one.proc.Stop(t)
		if err := os.RemoveAll(dataDir); err != nil {
			t.Fatal(err)
		}
	}
	mustPut(t, one, "k", "v")
	one.proc.Terminate(t)

	before := listDir(t, dataDir)
	ports := freePorts(t, 2)
	r := runRaftkv(t, t.TempDir(), nil, "serve", "--id", "2",
		"--cluster", one.peerURL+",http://127.0.0.1:"+strconv.Itoa(ports[0]),
		"--port", strconv.Itoa(ports[1]), "--data-dir", dataDir)
	checkRejected(t, r, "holds member 1's data")
	after := listDir(t, dataDir)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("the data dir changed:\nbefore %v\nafter  %v", before, after)
	}
}

// TestServeConfiguredByEnv runs a two-node cluster configured through
// RAFTKV_ variables alone, with default data dirs, and checks that a flag
// wins over its variable.
func TestServeConfiguredByEnv(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	// Node 2 gets RAFTKV_PORT set to a port the test holds and --port set to
	// a free one: if the variable won, node 2 could not start.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)

	for attempt := 1; ; attempt++ {
		cwd := t.TempDir()
		ports := freePorts(t, 4)
		urls := "http://127.0.0.1:" + strconv.Itoa(ports[0]) + ",http://127.0.0.1:" + strconv.Itoa(ports[1])
		n1 := &member{name: "node1", port: ports[2]}
		n2 := &member{name: "node2", port: ports[3]}
		c := &cluster{t: t, dir: cwd, members: []*member{n1, n2}}
		n1.proc = startProc(t, "node1", cwd, []string{"RAFTKV_ID=1", "RAFTKV_CLUSTER=" + urls, "RAFTKV_PORT=" + strconv.Itoa(n1.port)}, "serve")
		n2.proc = startProc(t, "node2", cwd, []string{"RAFTKV_ID=2", "RAFTKV_CLUSTER=" + urls, "RAFTKV_PORT=" + busyPort}, "serve", "--port", strconv.Itoa(n2.port))
		err := c.waitUp(n1)
		if err == nil {
			err = c.waitUp(n2)
		}
		if err != nil {
			n1.proc.Stop(t)
			n2.proc.Stop(t)
			if strings.Contains(n2.proc.Log(), ":"+busyPort) {
				t.Fatalf("node 2 used RAFTKV_PORT=%s instead of --port %d: %s", busyPort, n2.port, n2.proc.LastLine())
			}
			if attempt == startAttempts || !errors.Is(err, errPortTaken) {
				t.Fatal(err)
			}
			continue
		}
		mustPut(t, n2, "from-env", "yes")
		mustGet(t, n1, "from-env", "yes", false)
		for _, dir := range []string{"raftkv-1", "raftkv-2"} {
			if fi, err := os.Stat(filepath.Join(cwd, dir)); err != nil || !fi.IsDir() {
				t.Errorf("default data dir %s: %v", dir, err)
			}
		}
		return
	}
}

// listDir lists the files under dir with their sizes and content hashes.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			out = append(out, rel+"/")
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %d %s", rel, n, hex.EncodeToString(h.Sum(nil))[:12]))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
