//go:build unix

package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestStoredHTTPDataDirRefusesTLS is the first hour of a reader who ran
// `make run` and then pastes the README's TLS example without `make
// clean`: the same ports and data dirs, https peer URLs and peer TLS on a
// member table of http URLs. Before the fix the nodes ran and never elected
// a leader, logging only "client sent an HTTP request to an HTTPS server";
// now each exits 1 at once, with one line that says what is stored, what
// was given and what to do, and leaves its data dir as it was, so that the
// http cluster still starts on it.
func TestStoredHTTPDataDirRefusesTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	ex := readREADMETLS(t)
	dir := t.TempDir()
	ex.makeCerts(t, dir)
	put := func(p readmePorts) error {
		r, err := do(http.MethodPut, p.clientURL("http", 1)+"/my-key", "bar")
		if err != nil || r.status != http.StatusNoContent {
			return fmt.Errorf("PUT: %v %v", r, err)
		}
		return nil
	}
	// make run
	procfile := func(i int, p readmePorts) []string { return procfileArgs(t, p)[i-1] }
	procs, ports := startThree(t, dir, "make-run-node", nil, procfile, put)
	for _, p := range procs {
		p.Terminate(t)
	}

	dataDirs := make([][]string, 3)
	for i := range 3 {
		dataDirs[i] = listDir(t, filepath.Join(dir, "raftkv-"+strconv.Itoa(i+1)))
	}
	for i := 1; i <= 3; i++ {
		r := runRaftkv(t, dir, nil, ex.serveArgs(t, i, ports)...)
		peer := "127.0.0.1:" + strconv.Itoa(ports.peer[i-1])
		want := fmt.Sprintf("raftkv: invalid configuration: raftkv-%d holds a member table with plain http peer URLs (member %d: http://%s; the cluster list gives https://%s) but peer TLS is on", i, i, peer, peer)
		if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, want) || !strings.Contains(r.stderr, "make clean") {
			t.Errorf("TLS node %d on the http data dir: exit %d, stderr %q; want exit 1 and one line starting %q", i, r.code, r.stderr, want)
		}
	}
	for i := range 3 {
		if after := listDir(t, filepath.Join(dir, "raftkv-"+strconv.Itoa(i+1))); fmt.Sprint(after) != fmt.Sprint(dataDirs[i]) {
			t.Errorf("the refused start changed raftkv-%d:\nbefore %v\nafter  %v", i+1, dataDirs[i], after)
		}
	}

	// The data dirs still serve the cluster they belong to.
	get := func(p readmePorts) error {
		r, err := do(http.MethodGet, p.clientURL("http", 2)+"/my-key", "")
		if err != nil || r.status != http.StatusOK || r.body != "bar" {
			return fmt.Errorf("GET: %v %v", r, err)
		}
		return nil
	}
	startThree(t, dir, "make-run-again-node", &ports, procfile, get)
}

// TestStoredPeerURLMovedMember: a member restarted with another peer URL
// than its data dir holds is refused, in one line, while the cluster knows
// it at the old one; once `raftkv member update` moved it, the same start
// succeeds and the member serves linearizable reads through the new URL.
func TestStoredPeerURLMovedMember(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := startCluster(t, 3)
	n1, n2, n3 := c.members[0], c.members[1], c.members[2]
	mustPut(t, n1, "k", "v")
	n3.proc.Terminate(t)

	oldURL, newURL := n3.peerURL, "http://127.0.0.1:"+strconv.Itoa(freePorts(t, 1)[0])
	n3.cluster = strings.Replace(n3.cluster, oldURL, newURL, 1)
	before := listDir(t, n3.dataDir)
	r := runRaftkv(t, c.dir, nil, n3.args()...)
	want := fmt.Sprintf("raftkv: invalid configuration: %s stores member 3's peer URL as %s, not %s as the cluster list gives, and no running peer knows it at the new URL", n3.dataDir, oldURL, newURL)
	if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, want) || !strings.Contains(r.stderr, "raftkv member update 3 "+newURL) {
		t.Fatalf("node 3 on a new URL: exit %d, stderr %q; want exit 1 and one line starting %q", r.code, r.stderr, want)
	}
	if after := listDir(t, n3.dataDir); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the refused start changed node 3's data dir:\nbefore %v\nafter  %v", before, after)
	}

	update := runRaftkv(t, c.dir, nil, "member", "update", "3", newURL, "--endpoints", clientURLs(n1, n2))
	if update.code != 0 {
		t.Fatalf("raftkv member update 3 %s: exit %d: %s", newURL, update.code, update.stderr)
	}
	n3.peerURL = newURL
	c.restart(n3)
	mustGet(t, n3, "k", "v", false)
	if !strings.Contains(n3.proc.Log(), "peer URL was changed while it was down") {
		t.Error("node 3 did not log that its peer URL was confirmed by a peer")
	}
	mustPut(t, n3, "after-move", "ok")
	mustGet(t, n1, "after-move", "ok", false)
}
