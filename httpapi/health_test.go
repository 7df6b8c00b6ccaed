package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/listener"
	"github.com/raftkv/raftkv/raftnode"
	"github.com/raftkv/raftkv/wire"
)

func (n *node) status(t *testing.T) wire.Status {
	t.Helper()
	r := n.do(t, http.MethodGet, "/v1/status", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/status = %d %s", r.status, r.body)
	}
	var s wire.Status
	decodeStrict(t, r, &s)
	return s
}

// probe checks a probe's status and exact body.
func (n *node) probe(t *testing.T, path string, status int, body string) {
	t.Helper()
	r := n.do(t, http.MethodGet, path, nil)
	if r.status != status || strings.TrimSpace(string(r.body)) != body || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s = %d %s (%s), want %d %s", path, r.status, r.body, r.header.Get("Content-Type"), status, body)
	}
	if status == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "" {
		t.Fatalf("GET %s: 503 without Retry-After", path)
	}
}

// TestRaftHeaders checks that every response, success or error, of every
// part of the API names the leader and the term.
func TestRaftHeaders(t *testing.T) {
	n := startSingleNode(t)
	term := n.srv.Node().Term()
	if term == 0 {
		t.Fatal("term 0 after an election")
	}
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/k", "v"},
		{"GET", "/k", ""},
		{"GET", "/missing", ""},
		{"PATCH", "/k", ""},
		{"GET", "/v1/kv/k", ""},
		{"GET", "/v1/nothing", ""},
		{"GET", "/v1/members", ""},
		{"GET", "/v1/status", ""},
		{"GET", "/livez", ""},
		{"GET", "/readyz", ""},
		{"GET", "/health", ""},
		{"GET", "/metrics", ""},
	} {
		r := n.do(t, c.method, c.path, []byte(c.body))
		checkRaftHeaders(t, r, 1, term)
	}
}

// TestStatus checks /v1/status on a single node as it takes writes, takes
// snapshots and serves a watcher.
func TestStatus(t *testing.T) {
	const snapshotCount = 10
	n := startSingleNodeWith(t, nodeOptions{snapshotCount: snapshotCount})
	node := n.srv.Node()
	waitFor(t, "the node publishes its name", func() bool {
		for _, m := range node.Members() {
			if m.ID == 1 && m.Name != "" {
				return true
			}
		}
		return false
	})
	s1 := n.status(t)
	want := wire.Status{ID: 1, Name: "raftkv-1", Version: testVersion, ClusterID: raftnode.FormatID(node.ClusterID()),
		RaftState: "leader", Leader: 1, Term: node.Term()}
	if s1.ID != want.ID || s1.Name != want.Name || s1.Version != want.Version || s1.ClusterID != want.ClusterID ||
		s1.RaftState != want.RaftState || s1.Leader != want.Leader || s1.Term != want.Term {
		t.Fatalf("status = %+v, want %+v", s1, want)
	}
	if s1.CommitIndex == 0 || s1.AppliedIndex > s1.CommitIndex || s1.Keys != 0 || s1.Watchers != 0 ||
		s1.DataDirBytes <= 0 || s1.WALFiles < 1 || s1.UptimeSeconds <= 0 {
		t.Fatalf("status of a fresh node = %+v", s1)
	}

	const writes = 3 * snapshotCount
	var last uint64
	for i := range writes {
		last = n.putV1(t, fmt.Sprintf("k%02d", i), "v", nil).Revision
	}
	w := n.watch(t, "/v1/watch/k00", nil)
	defer w.close()
	waitFor(t, "the watcher is registered", func() bool { return n.srv.KV().Watchers() == 1 })
	s2 := n.status(t)
	if s2.Keys != writes || s2.Revision != last || s2.AppliedIndex < last || s2.CommitIndex < s2.AppliedIndex ||
		s2.Watchers != 1 || s2.SnapshotIndex == 0 || s2.SnapshotFiles < 1 || s2.WALFiles < 1 ||
		s2.DataDirBytes <= s1.DataDirBytes || s2.UptimeSeconds <= s1.UptimeSeconds || s2.Term != s1.Term {
		t.Fatalf("status after %d writes (last revision %d) = %+v; before: %+v", writes, last, s2, s1)
	}
	if r := n.do(t, http.MethodPost, "/v1/status", nil); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST /v1/status = %d, Allow %q", r.status, r.header.Get("Allow"))
	}
	if r := n.do(t, http.MethodGet, "/v1/status/x", nil); r.status != http.StatusNotFound {
		t.Fatalf("GET /v1/status/x = %d", r.status)
	}
}

// TestProbes checks /livez, /readyz and /health on a healthy node.
func TestProbes(t *testing.T) {
	n := startSingleNode(t)
	n.probe(t, "/livez", http.StatusOK, `{"status":"ok"}`)
	n.probe(t, "/readyz", http.StatusOK, `{"status":"ready"}`)
	n.probe(t, "/health", http.StatusOK, `{"health":"true","reason":""}`)
	for _, path := range []string{"/livez", "/readyz", "/health"} {
		if r := n.do(t, http.MethodHead, path, nil); r.status != http.StatusOK || len(r.body) != 0 {
			t.Fatalf("HEAD %s = %d with %d body bytes", path, r.status, len(r.body))
		}
		r := n.do(t, http.MethodPost, path, nil)
		expect(t, "POST "+path, r, http.StatusMethodNotAllowed, "method_not_allowed")
		if r.header.Get("Allow") != "GET, HEAD" {
			t.Fatalf("POST %s: Allow %q", path, r.header.Get("Allow"))
		}
	}
}

// TestProbesWithoutLeader checks a node cut off from its cluster (the only
// started member of three): alive but neither ready nor healthy; its own
// status still answers; what needs the leader is 503.
func TestProbesWithoutLeader(t *testing.T) {
	var lns []*listener.Listener
	var peers []string
	for range 3 {
		ln, err := listener.New("127.0.0.1:0", nil)
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		peers = append(peers, "http://"+ln.Addr().String())
	}
	lns[1].Close()
	lns[2].Close()
	n := startNode(t, 1, peers, lns[0], 300*time.Millisecond)

	n.probe(t, "/livez", http.StatusOK, `{"status":"ok"}`)
	n.probe(t, "/readyz", http.StatusServiceUnavailable, `{"status":"unready","reason":"no leader"}`)
	n.probe(t, "/health", http.StatusServiceUnavailable, `{"health":"false","reason":"no leader"}`)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/members", ""},
		{"POST", "/v1/members", `{"peer_urls": ["http://127.0.0.1:1"]}`},
		{"POST", "/v1/members/2/promote", ""},
		{"POST", "/v1/leader/transfer", ""},
	} {
		r := n.do(t, c.method, c.path, []byte(c.body))
		expect(t, c.method+" "+c.path, r, http.StatusServiceUnavailable, "no_leader")
		if r.header.Get("Retry-After") == "" {
			t.Fatalf("%s %s: 503 without Retry-After", c.method, c.path)
		}
		checkRaftHeaders(t, r, 0, n.srv.Node().Term())
	}
	s := n.status(t)
	if s.ID != 1 || s.Leader != 0 || (s.RaftState != "follower" && s.RaftState != "pre-candidate") || s.Keys != 0 {
		t.Fatalf("status of a node without a leader = %+v", s)
	}
}
