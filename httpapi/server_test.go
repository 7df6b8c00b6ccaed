package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/raftkv/raftkv/httpapi"
	"github.com/raftkv/raftkv/kvstore"
	"github.com/raftkv/raftkv/listener"
	"github.com/raftkv/raftkv/raftnode"
	"github.com/raftkv/raftkv/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testMaxKey     = 64
	testMaxRequest = 1024
)

// node is one real raftkv node serving the client API on a loopback port.
type node struct {
	srv  *server.Server
	url  string
	http *http.Client
}

// nodeOptions are the settings tests vary; zero values take the defaults.
type nodeOptions struct {
	requestTimeout time.Duration
	kv             kvstore.Config // watch limits
	watchKeepalive time.Duration
	// wrapClientListener, when set, wraps the client API's listener.
	wrapClientListener func(net.Listener) net.Listener
	// snapshotCount is raft's snapshot cadence (zero: raftnode's default).
	snapshotCount uint64
	// limits sets the API's limits on clients; maxConnections the
	// server's connection cap (zero: the defaults).
	limits         func(*httpapi.Config)
	maxConnections int
}

// testVersion is the version the test nodes report.
const testVersion = "v0.0.0-test"

// startNode starts member id of a cluster whose peer URLs are peers; peers[id-1]
// is served by peerLn.
func startNode(t *testing.T, id uint64, peers []string, peerLn *listener.Listener, requestTimeout time.Duration) *node {
	t.Helper()
	return startNodeWith(t, id, peers, peerLn, nodeOptions{requestTimeout: requestTimeout})
}

func startNodeWith(t *testing.T, id uint64, peers []string, peerLn *listener.Listener, o nodeOptions) *node {
	t.Helper()
	if o.requestTimeout == 0 {
		o.requestTimeout = 5 * time.Second
	}
	clientLn, err := listener.New("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener = clientLn
	if o.wrapClientListener != nil {
		ln = o.wrapClientListener(clientLn)
	}
	cfg := raftnode.DefaultConfig()
	cfg.ID, cfg.Peers, cfg.DataDir, cfg.PeerListener = id, peers, t.TempDir(), peerLn
	cfg.TickInterval = 10 * time.Millisecond
	cfg.RequestTimeout = o.requestTimeout
	cfg.SnapshotCount = o.snapshotCount
	api := httpapi.Config{MaxKeyBytes: testMaxKey, MaxRequestBytes: testMaxRequest,
		RequestTimeout: o.requestTimeout, WatchKeepalive: o.watchKeepalive, Version: testVersion}
	if o.limits != nil {
		o.limits(&api)
	}
	srv, err := server.Start(server.Config{
		Raft:           cfg,
		KV:             o.kv,
		API:            api,
		ClientListener: ln,
		Logger:         zaptest.NewLogger(t),
		MaxConnections: o.maxConnections,
	})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{srv: srv, url: "http://" + clientLn.Addr().String(), http: &http.Client{Timeout: 10 * time.Second}}
	t.Cleanup(func() {
		n.http.CloseIdleConnections()
		if err := srv.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return n
}

// startSingleNode starts a one-member cluster and waits until it leads.
func startSingleNode(t *testing.T) *node {
	t.Helper()
	return startSingleNodeWith(t, nodeOptions{})
}

func startSingleNodeWith(t *testing.T, o nodeOptions) *node {
	t.Helper()
	peerLn, err := listener.New("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	n := startNodeWith(t, 1, []string{"http://" + peerLn.Addr().String()}, peerLn, o)
	deadline := time.Now().Add(10 * time.Second)
	for n.srv.Node().Leader() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("single node did not become leader")
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not waiting for time
	}
	return n
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (n *node) do(t *testing.T, method, path string, body []byte) response {
	t.Helper()
	return n.doHeader(t, method, path, nil, body)
}

// doHeader sends a request with extra headers.
func (n *node) doHeader(t *testing.T, method, path string, header http.Header, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, n.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if len(body) > 32<<10 {
		// A body over the server's limit is refused before it is read, and
		// the connection closed: a client still writing it then may see a
		// reset instead of the 413 when the machine is slow. Asking first
		// is what a client sending large bodies should do anyway.
		req.Header.Set("Expect", "100-continue")
	}
	resp, err := n.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func errorCode(t *testing.T, r response) string {
	t.Helper()
	var e struct{ Error, Code string }
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error == "" {
		t.Fatalf("error body %q is not {error, code} JSON: %v", r.body, err)
	}
	for _, pkg := range []string{"kvstore:", "raftnode:", "httpapi:", "server:"} {
		if strings.Contains(e.Error, pkg) {
			t.Errorf("error message %q names a package: users read it", e.Error)
		}
	}
	return e.Code
}

func TestRootAPIRoundTrip(t *testing.T) {
	n := startSingleNode(t)
	cases := []struct{ path, value string }{
		{"/plain", "bar"},
		{"/a/b/c", "nested"},
		{"/a//b", "double slash is its own key"},
		{"/a/../b", "dots are literal"},
		{"/%00%FF%2F", "binary key"},
		{"/empty-value", ""},
		{"/q?ignored=1", "query string is not part of the key"},
	}
	for _, c := range cases {
		if r := n.do(t, http.MethodPut, c.path, []byte(c.value)); r.status != http.StatusNoContent {
			t.Fatalf("PUT %s = %d %s", c.path, r.status, r.body)
		} else if r.header.Get("X-Raftkv-Revision") == "" {
			t.Fatalf("PUT %s has no revision header", c.path)
		}
	}
	for _, c := range cases {
		path, _, _ := strings.Cut(c.path, "?")
		for _, q := range []string{"", "?consistency=serializable", "?consistency=linearizable"} {
			r := n.do(t, http.MethodGet, path+q, nil)
			if r.status != http.StatusOK || string(r.body) != c.value {
				t.Fatalf("GET %s%s = %d %q, want 200 %q", path, q, r.status, r.body, c.value)
			}
		}
	}
	if r := n.do(t, http.MethodGet, "/a/b", nil); r.status != http.StatusNotFound {
		t.Fatalf("GET /a/b = %d; /a//b must not alias it", r.status)
	}
	if r := n.do(t, http.MethodHead, "/plain", nil); r.status != http.StatusOK || len(r.body) != 0 {
		t.Fatalf("HEAD /plain = %d with %d body bytes", r.status, len(r.body))
	}
}

// TestBadInput fires every malformed request the root API can receive and
// checks the exact status and code, that nothing changed, and that the node
// still serves.
func TestBadInput(t *testing.T) {
	n := startSingleNode(t)
	if r := n.do(t, http.MethodPut, "/existing", []byte("v")); r.status != http.StatusNoContent {
		t.Fatalf("seed PUT = %d", r.status)
	}
	peerURL := n.srv.Node().Members()[0].PeerURLs[0]
	cases := []struct {
		method, path string
		body         []byte
		status       int
		code         string
	}{
		{http.MethodPut, "/", []byte("v"), 400, "empty_key"},
		{http.MethodGet, "/", nil, 400, "empty_key"},
		{http.MethodPut, "/" + strings.Repeat("k", testMaxKey+1), []byte("v"), 413, "key_too_large"},
		{http.MethodPut, "/big", bytes.Repeat([]byte("v"), testMaxRequest+1), 413, "request_too_large"},
		{http.MethodGet, "/existing?consistency=eventual", nil, 400, "invalid_consistency"},
		{http.MethodGet, "/missing", nil, 404, "key_not_found"},
		{http.MethodPatch, "/existing", []byte("v"), 405, "method_not_allowed"},
		{http.MethodOptions, "/existing", nil, 405, "method_not_allowed"},
		{http.MethodPost, "/abc", []byte("http://127.0.0.1:1"), 400, "invalid_member_id"},
		{http.MethodPost, "/0", []byte("http://127.0.0.1:1"), 400, "invalid_member_id"},
		{http.MethodPost, "/-1", []byte("http://127.0.0.1:1"), 400, "invalid_member_id"},
		{http.MethodPost, "/99999999999999999999999", []byte("http://127.0.0.1:1"), 400, "invalid_member_id"},
		{http.MethodPost, "/5", nil, 400, "invalid_peer_url"},
		{http.MethodPost, "/5", []byte("127.0.0.1:1"), 400, "invalid_peer_url"},
		{http.MethodPost, "/5", []byte("ftp://127.0.0.1:1"), 400, "invalid_peer_url"},
		{http.MethodPost, "/5", []byte("http://127.0.0.1"), 400, "invalid_peer_url"},
		{http.MethodPost, "/5", []byte("http://127.0.0.1:1/path?q"), 400, "invalid_peer_url"},
		{http.MethodPost, "/5", bytes.Repeat([]byte("h"), 8<<10), 413, "request_too_large"},
		{http.MethodPost, "/1", []byte("http://127.0.0.1:1"), 409, "member_exists"},
		{http.MethodPost, "/5", []byte(peerURL), 409, "peer_url_exists"},
		{http.MethodDelete, "/abc", nil, 400, "invalid_member_id"},
		{http.MethodDelete, "/7", nil, 404, "member_not_found"},
		{http.MethodDelete, "/1", nil, 409, "last_voter"},
		{http.MethodGet, "/v1", nil, 404, "not_found"},
		{http.MethodGet, "/metrics/x", nil, 404, "not_found"},
		{http.MethodPost, "/metrics", nil, 405, "method_not_allowed"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s %.40s", c.method, c.path), func(t *testing.T) {
			before := n.srv.KV().Store().Revision()
			r := n.do(t, c.method, c.path, c.body)
			if r.status != c.status {
				t.Fatalf("status = %d %s, want %d", r.status, r.body, c.status)
			}
			if got := errorCode(t, r); got != c.code {
				t.Fatalf("code = %q, want %q", got, c.code)
			}
			if r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("Content-Type = %q", r.header.Get("Content-Type"))
			}
			if c.status == 405 && r.header.Get("Allow") == "" {
				t.Fatal("405 without Allow")
			}
			if after := n.srv.KV().Store().Revision(); after != before {
				t.Fatalf("store revision moved from %d to %d", before, after)
			}
			if got := len(n.srv.Node().Members()); got != 1 {
				t.Fatalf("%d members after a rejected request", got)
			}
			if r := n.do(t, http.MethodGet, "/existing", nil); r.status != 200 || string(r.body) != "v" {
				t.Fatalf("node unhealthy afterwards: GET /existing = %d %q", r.status, r.body)
			}
		})
	}
}

// TestNoLeaderIsUnavailable checks that a node cut off from its cluster
// answers writes and linearizable reads with 503 and Retry-After, and still
// serves serializable reads.
func TestNoLeaderIsUnavailable(t *testing.T) {
	// Member 1 of a three-member cluster whose other members never start:
	// without a quorum there is no leader.
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

	for _, c := range []struct{ method, path string }{
		{http.MethodPut, "/k"},
		{http.MethodGet, "/k"},
		{http.MethodPost, "/4"},
	} {
		body := []byte("v")
		if c.method == http.MethodPost {
			body = []byte("http://127.0.0.1:1")
		}
		r := n.do(t, c.method, c.path, body)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Fatalf("%s %s = %d (Retry-After %q) %s, want 503 with Retry-After", c.method, c.path, r.status, r.header.Get("Retry-After"), r.body)
		}
		if code := errorCode(t, r); code != "no_leader" {
			t.Fatalf("%s %s code = %q, want no_leader", c.method, c.path, code)
		}
	}
	if r := n.do(t, http.MethodGet, "/k?consistency=serializable", nil); r.status != http.StatusNotFound {
		t.Fatalf("serializable GET = %d, want a local answer (404)", r.status)
	}
}
