package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/raftkv/raftkv/httpapi"
	"github.com/raftkv/raftkv/listener"
	"github.com/raftkv/raftkv/raftnode"
	"github.com/raftkv/raftkv/server"
)

// fuzzServer is a real single-node raftkv server (a real WAL, raft, the
// store) that every input of one fuzz target is sent to, through a client
// API handler built on the server's node and KV service. Calling the
// handler directly rather than over a socket lets a panic reach the fuzzer
// (net/http would recover it) and keeps each input fast; the request itself
// is parsed by net/http from raw bytes, as the server would.
type fuzzServer struct {
	srv     *server.Server
	handler http.Handler
	selfURL string // member 1's peer URL
}

func startFuzzServer(tb testing.TB) *fuzzServer {
	tb.Helper()
	peerLn, err := listener.New("127.0.0.1:0", nil)
	if err != nil {
		tb.Fatal(err)
	}
	clientLn, err := listener.New("127.0.0.1:0", nil)
	if err != nil {
		tb.Fatal(err)
	}
	self := "http://" + peerLn.Addr().String()
	cfg := raftnode.DefaultConfig()
	cfg.ID, cfg.Peers, cfg.DataDir, cfg.PeerListener = 1, []string{self}, tb.TempDir(), peerLn
	cfg.TickInterval = 10 * time.Millisecond
	cfg.SnapshotCount = 500 // snapshots and compaction happen while fuzzing
	cfg.SnapshotCatchUpEntries = 50
	apiCfg := httpapi.Config{MaxKeyBytes: testMaxKey, MaxRequestBytes: testMaxRequest, RequestTimeout: 2 * time.Second, Version: testVersion}
	// The logs of a long fuzzing run would only fill memory; failures show
	// in the answers.
	lg := zap.NewNop()
	srv, err := server.Start(server.Config{Raft: cfg, API: apiCfg, ClientListener: clientLn, Logger: lg})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			tb.Errorf("stop: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for srv.Node().Leader() != 1 {
		if time.Now().After(deadline) {
			tb.Fatal("the fuzz server did not become leader")
		}
		time.Sleep(5 * time.Millisecond) // polling a condition
	}
	apiCfg.KV, apiCfg.Cluster, apiCfg.Logger = srv.KV(), srv.Node(), lg
	reg := prometheus.NewRegistry()
	apiCfg.Metrics, apiCfg.Gatherer = reg, reg
	return &fuzzServer{srv: srv, handler: httpapi.New(apiCfg), selfURL: self}
}

// streamRecorder records a response and ends a watch stream as soon as it
// has started, by cancelling the request's context, so that watches answer
// like every other request.
type streamRecorder struct {
	*httptest.ResponseRecorder
	cancel context.CancelFunc
}

func (r *streamRecorder) WriteHeader(status int) {
	r.ResponseRecorder.WriteHeader(status)
	if r.Header().Get("Content-Type") == "text/event-stream" {
		r.cancel()
	}
}

// Header bits of the fuzz inputs: which optional headers a request carries.
const (
	withIfMatch = 1 << iota
	withIfNoneMatch
	withLastEventID
	withSecondIfMatch
	withForwarded
)

// buildRequest makes the raw request and parses it as net/http's server
// would; ok is false for requests the server refuses before any handler runs.
func buildRequest(method, target, ifMatch, ifNoneMatch string, headers uint8, body []byte) (*http.Request, bool) {
	// A line break would end the request line or the headers early (and
	// net/http's server refuses control characters in header values).
	ctl := func(c rune) bool { return c < ' ' && c != '\t' || c == 0x7f }
	if strings.ContainsFunc(method+target, func(c rune) bool { return c == '\r' || c == '\n' }) ||
		strings.ContainsFunc(ifMatch+ifNoneMatch, ctl) {
		return nil, false
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s HTTP/1.1\r\nHost: raftkv\r\n", method, target)
	add := func(name, value string) { sb.WriteString(name + ": " + value + "\r\n") }
	if headers&withIfMatch != 0 {
		add("If-Match", ifMatch)
	}
	if headers&withSecondIfMatch != 0 {
		add("If-Match", ifNoneMatch)
	}
	if headers&withIfNoneMatch != 0 {
		add("If-None-Match", ifNoneMatch)
	}
	if headers&withLastEventID != 0 {
		add("Last-Event-ID", ifMatch)
	}
	if headers&withForwarded != 0 {
		add("X-Raftkv-Forwarded", "2")
	}
	fmt.Fprintf(&sb, "Content-Length: %d\r\n\r\n", len(body))
	r, err := http.ReadRequest(bufio.NewReader(io.MultiReader(strings.NewReader(sb.String()), bytes.NewReader(body))))
	if err != nil || r.ContentLength != int64(len(body)) {
		return nil, false
	}
	return r, true
}

// reservedRoot reports whether a root-API key names a path the server keeps
// for itself (README: "keys whose first path segment is one of those names,
// escaped or not, cannot be used through the root API").
func reservedRoot(key string) bool {
	first, _, _ := strings.Cut(key, "/")
	switch first {
	case "v1", "metrics", "livez", "readyz", "health":
		return true
	}
	return false
}

// serve sends one fuzzed request and checks every invariant the API
// promises for it.
func (fs *fuzzServer) serve(t *testing.T, r *http.Request, body []byte) {
	store := fs.srv.KV().Store()
	revBefore, keysBefore := store.Revision(), store.Len()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec := &streamRecorder{ResponseRecorder: httptest.NewRecorder(), cancel: cancel}
	fs.handler.ServeHTTP(rec, r.WithContext(ctx))
	res := rec.Result()
	status, h := res.StatusCode, res.Header
	got := rec.Body.Bytes()
	desc := fmt.Sprintf("%s %s (If-Match %q, If-None-Match %q, body %q) answered %d %s",
		r.Method, r.RequestURI, r.Header.Values("If-Match"), r.Header.Values("If-None-Match"), trim(body), status, trim(got))

	if status >= 500 && status != http.StatusServiceUnavailable && status != http.StatusGatewayTimeout {
		t.Fatalf("server error: %s", desc)
	}
	if h.Get("X-Raft-Leader") == "" || h.Get("X-Raft-Term") == "" {
		t.Fatalf("no X-Raft-Leader or X-Raft-Term: %s", desc)
	}
	if status >= 400 {
		var e struct {
			Error string `json:"error"`
			Code  string `json:"code"`
		}
		d := json.NewDecoder(bytes.NewReader(got))
		if h.Get("Content-Type") != "application/json" || d.Decode(&e) != nil || e.Error == "" || e.Code == "" || d.More() {
			t.Fatalf("the error is not one JSON object with error and code: %s", desc)
		}
	}
	switch status {
	case http.StatusServiceUnavailable:
		if h.Get("Retry-After") == "" {
			t.Fatalf("503 without Retry-After: %s", desc)
		}
	case http.StatusMethodNotAllowed:
		if h.Get("Allow") == "" {
			t.Fatalf("405 without Allow: %s", desc)
		}
	}

	// State: only a successful change (or one whose outcome is unknown)
	// moves the store, and never backwards.
	revAfter := store.Revision()
	switch {
	case revAfter < revBefore:
		t.Fatalf("the store revision went back from %d to %d: %s", revBefore, revAfter, desc)
	case revAfter != revBefore && (status >= 300 && status != http.StatusGatewayTimeout):
		t.Fatalf("the store changed (revision %d to %d, %d to %d keys) on a failed request: %s", revBefore, revAfter, keysBefore, store.Len(), desc)
	}
	if n := fs.srv.KV().Watchers(); n != 0 {
		t.Fatalf("%d watchers left open after the request: %s", n, desc)
	}
	select {
	case <-fs.srv.Done():
		t.Fatalf("the server stopped (%v) after %s", fs.srv.Err(), desc)
	default:
	}
	if status/100 == 2 {
		fs.checkWrite(t, r, body, desc)
	}
	fs.restoreMembers(t, desc)
}

// checkWrite checks that a successful write did what it says.
func (fs *fuzzServer) checkWrite(t *testing.T, r *http.Request, body []byte, desc string) {
	store := fs.srv.KV().Store()
	raw := strings.TrimPrefix(r.URL.EscapedPath(), "/")
	v1Key, isV1 := strings.CutPrefix(raw, "v1/kv/")
	if !isV1 {
		if strings.HasPrefix(raw, "v1/") || r.Method != http.MethodPut {
			return
		}
		key, err := url.PathUnescape(raw)
		if err != nil {
			t.Fatalf("a write to a key that is not valid URL encoding succeeded: %s", desc)
		}
		if reservedRoot(key) {
			t.Fatalf("the root API wrote the reserved key %q: %s", key, desc)
		}
		if it, _, ok := store.Get([]byte(key)); !ok || !bytes.Equal(it.Value, body) {
			t.Fatalf("after PUT, key %q holds %q (present %v): %s", key, trim(it.Value), ok, desc)
		}
		return
	}
	key, err := url.PathUnescape(v1Key)
	if err != nil {
		t.Fatalf("a /v1/kv request with a key that is not valid URL encoding succeeded: %s", desc)
	}
	switch {
	case r.Method == http.MethodPut:
		it, _, ok := store.Get([]byte(key))
		if !ok || !bytes.Equal(it.Value, body) {
			t.Fatalf("after PUT, key %q holds %q (present %v): %s", key, trim(it.Value), ok, desc)
		}
		if _, ok := r.Header["If-Match"]; ok && it.Version < 2 {
			t.Fatalf("a PUT with If-Match created key %q: %s", key, desc)
		}
		if _, ok := r.Header["If-None-Match"]; ok && it.Version != 1 {
			t.Fatalf("a create-only PUT overwrote key %q (version %d): %s", key, it.Version, desc)
		}
	case r.Method == http.MethodDelete && key != "":
		if _, _, ok := store.Get([]byte(key)); ok {
			t.Fatalf("key %q is still there after DELETE: %s", key, desc)
		}
	case r.Method == http.MethodDelete:
		prefix := r.URL.Query().Get("prefix")
		if kvs, _, _ := store.List([]byte(prefix), nil, 1); len(kvs) != 0 {
			t.Fatalf("key %q with prefix %q is still there after a range delete: %s", kvs[0].Key, prefix, desc)
		}
	}
}

// restoreMembers undoes membership changes an input made (adding learners,
// moving member 1's peer URL), so that every input meets the same cluster,
// and checks that member 1 is still the one voter and the leader.
func (fs *fuzzServer) restoreMembers(t *testing.T, desc string) {
	node := fs.srv.Node()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A change right after another one that was reported applied can be
	// refused as pending for a moment (TestBackToBackMemberChanges); the
	// restore waits that out.
	retry := func(change func() error) error {
		for {
			err := change()
			if !errors.Is(err, raftnode.ErrConfChangePending) || ctx.Err() != nil {
				return err
			}
			time.Sleep(time.Millisecond)
		}
	}
	for _, m := range node.Members() {
		switch {
		case m.ID != 1 && !m.IsLearner:
			t.Fatalf("member %d became a voter of the one-node cluster: %s", m.ID, desc)
		case m.ID != 1:
			if err := retry(func() error { return node.RemoveMember(ctx, m.ID) }); err != nil {
				t.Fatalf("remove learner %d again: %v (after %s)", m.ID, err, desc)
			}
		case len(m.PeerURLs) != 1 || m.PeerURLs[0] != fs.selfURL:
			if err := retry(func() error { _, err := node.UpdateMember(ctx, 1, []string{fs.selfURL}); return err }); err != nil {
				t.Fatalf("restore member 1's peer URL: %v (after %s)", err, desc)
			}
		}
	}
	for node.Leader() != 1 {
		if ctx.Err() != nil {
			t.Fatalf("member 1 no longer leads after %s", desc)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition
	}
}

func trim(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

// addRequestSeeds adds the seed corpus shared by both targets: target is
// what follows the fixed prefix of the target.
func addRequestSeeds(f *testing.F, seeds [][]string) {
	for _, s := range seeds {
		method, target, ifMatch, ifNoneMatch, headers, body := s[0], s[1], s[2], s[3], s[4], s[5]
		h, err := strconv.ParseUint(headers, 2, 8)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(method, target, ifMatch, ifNoneMatch, uint8(h), []byte(body))
	}
}

// FuzzRootRequest sends fuzzed requests to the root API (raftexample's
// PUT/GET /{key}, POST/DELETE /{id}, and the reserved paths beside them).
func FuzzRootRequest(f *testing.F) {
	long := strings.Repeat("k", testMaxKey+1)
	addRequestSeeds(f, [][]string{
		// method, target after "/", If-Match, If-None-Match, header bits, body
		{"PUT", "key", "", "", "0", "value"},
		{"GET", "key", "", "", "0", ""},
		{"HEAD", "key?consistency=serializable", "", "", "0", ""},
		{"GET", "key?consistency=eventual", "", "", "0", ""},
		{"PUT", "", "", "", "0", "v"},
		{"PUT", long, "", "", "0", "v"},
		{"PUT", "big", "", "", "0", strings.Repeat("v", testMaxRequest+1)},
		{"PUT", "a%2Fb%00%ff", "", "", "0", "binary"},
		{"PUT", "a//b/../c", "", "", "0", "v"},
		{"PUT", "%6detrics", "", "", "0", "v"},
		{"PUT", "livez/x", "", "", "0", "v"},
		{"GET", "metrics", "", "", "0", ""},
		{"POST", "livez", "", "", "0", ""},
		{"PATCH", "key", "", "", "0", "v"},
		{"POST", "2", "", "", "0", "http://127.0.0.1:2"},
		{"POST", "0x2", "", "", "0", "http://127.0.0.1:2"},
		{"POST", "0", "", "", "0", "http://127.0.0.1:2"},
		{"POST", "2", "", "", "0", "not a url"},
		{"POST", "1", "", "", "0", "http://127.0.0.1:2"},
		{"DELETE", "1", "", "", "0", ""},
		{"DELETE", "9", "", "", "0", ""},
		{"DELETE", "abc", "", "", "0", ""},
	})
	fs := startFuzzServer(f)
	f.Fuzz(func(t *testing.T, method, target, ifMatch, ifNoneMatch string, headers uint8, body []byte) {
		r, ok := buildRequest(method, "/"+target, ifMatch, ifNoneMatch, headers, body)
		if !ok {
			return
		}
		fs.serve(t, r, body)
	})
}

// FuzzV1Request sends fuzzed requests to the versioned API: keys with
// conditions, listings and range deletes with their query strings, watches,
// members, leadership and status.
func FuzzV1Request(f *testing.F) {
	addRequestSeeds(f, [][]string{
		// method, target after "/v1/", If-Match, If-None-Match, header bits, body
		{"PUT", "kv/key", "", "", "0", "value"},
		{"PUT", "kv/key", `"3"`, "", "1", "cas"},
		{"PUT", "kv/key", "*", "", "1", "exists"},
		{"PUT", "kv/new", "", "*", "10", "create"},
		{"PUT", "kv/key", `W/"1"`, "", "1", "weak"},
		{"PUT", "kv/key", `"1", "2"`, "", "1", "list"},
		{"PUT", "kv/key", `"1"`, `"2"`, "1001", "two"},
		{"PUT", "kv/key", `"1"`, "*", "11", "both"},
		{"GET", "kv/key", "", "", "0", ""},
		{"HEAD", "kv/key?consistency=serializable", "", "", "0", ""},
		{"GET", "kv/key?prefix=k", "", "", "0", ""},
		{"DELETE", "kv/key", `"5"`, "", "1", ""},
		{"DELETE", "kv/key", "", "*", "10", ""},
		{"DELETE", "kv/?prefix=k", "", "", "0", ""},
		{"DELETE", "kv/?prefix=", "", "", "0", ""},
		{"DELETE", "kv/?prefix=a&prefix=b", "", "", "0", ""},
		{"DELETE", "kv/", "", "", "0", ""},
		{"GET", "kv/?prefix=k&limit=2&keys_only=true", "", "", "0", ""},
		{"GET", "kv/?limit=0", "", "", "0", ""},
		{"GET", "kv/?prefix=k&encoding=text", "", "", "0", ""},
		{"GET", "kv/?encoding=hex", "", "", "0", ""},
		{"GET", "kv/key?encoding=text", "", "", "0", ""},
		{"GET", "kv/?cursor=a2V5&limit=1", "", "", "0", ""},
		{"GET", "kv/?cursor=***", "", "", "0", ""},
		{"GET", "kv/?prefix=%zz", "", "", "0", ""},
		{"GET", "kv/?a;b", "", "", "0", ""},
		{"GET", "kv/%00%ff/a%2Fb", "", "", "0", ""},
		{"GET", "watch/key?from=1", "", "", "0", ""},
		{"GET", "watch/?prefix=true", "", "", "0", ""},
		{"GET", "watch/key", "7", "", "100", ""},
		{"GET", "watch/key?from=0", "", "", "0", ""},
		{"GET", "watch/key?encoding=text&from=1", "", "", "0", ""},
		{"POST", "watch/key", "", "", "0", ""},
		{"GET", "members", "", "", "0", ""},
		{"POST", "members", "", "", "0", `{"peer_urls": ["http://127.0.0.1:2"], "learner": true}`},
		{"POST", "members", "", "", "0", `{"id": 3, "peer_urls": ["http://127.0.0.1:3"]}`},
		{"POST", "members", "", "", "0", `{"id": 1, "peer_urls": ["http://127.0.0.1:3"]}`},
		{"POST", "members", "", "", "0", `{"peer_urls": []}`},
		{"POST", "members", "", "", "0", `{"peer_urls": ["x"], "extra": 1}`},
		{"POST", "members", "", "", "0", `{"peer_urls": ["http://127.0.0.1:2"]} {}`},
		{"PUT", "members/1", "", "", "0", `{"peer_urls": ["http://127.0.0.1:4"]}`},
		{"PUT", "members/0x9", "", "", "0", `{"peer_urls": ["http://127.0.0.1:4"]}`},
		{"DELETE", "members/1", "", "", "0", ""},
		{"POST", "members/1/promote", "", "", "10000", ""},
		{"GET", "members/1/promote", "", "", "0", ""},
		{"POST", "leader/transfer", "", "", "0", `{"to": 1}`},
		{"POST", "leader/transfer", "", "", "0", `{"to": 9}`},
		{"POST", "leader/transfer", "", "", "0", `{`},
		{"POST", "leader/transfer", "", "", "0", ""},
		{"GET", "status", "", "", "0", ""},
		{"DELETE", "status", "", "", "0", ""},
		{"GET", "nope", "", "", "0", ""},
	})
	fs := startFuzzServer(f)
	f.Fuzz(func(t *testing.T, method, target, ifMatch, ifNoneMatch string, headers uint8, body []byte) {
		r, ok := buildRequest(method, "/v1/"+target, ifMatch, ifNoneMatch, headers, body)
		if !ok {
			return
		}
		fs.serve(t, r, body)
	})
}

// TestRootRefusesEscapedV1 checks the README's promise that keys whose first
// path segment is a reserved name, "escaped or not", cannot be used through
// the root API, for the name v1: /v1%2Fkv and /%761 decode to "v1/kv" and
// "v1".
func TestRootRefusesEscapedV1(t *testing.T) {
	n := startSingleNode(t)
	for _, path := range []string{"/v1%2Fkv", "/%761", "/%76%31/x", "/%6detrics"} {
		resp, err := n.http.Do(mustRequest(t, http.MethodPut, n.url+path, "v"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(b), `"not_found"`) {
			t.Errorf("PUT %s: %d %s, want 404 not_found (the key is reserved on the root API)", path, resp.StatusCode, strings.TrimSpace(string(b)))
		}
	}
}

func mustRequest(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestBackToBackMemberChanges makes membership changes one after the other
// on one node, each sent once the previous one was answered as applied:
// none may be refused as conflicting with a change still pending. The fuzz
// target FuzzV1Request found that one can be: the node answers a change once
// it applied it to the member table, but counts it as applied (for the
// conf_change_pending check) only when it hands the batch to the state
// machine, a moment later.
func TestBackToBackMemberChanges(t *testing.T) {
	n := startSingleNode(t)
	self := n.srv.Node().Members()[0].PeerURLs[0]
	for i := range 100 {
		for _, u := range []string{"http://127.0.0.1:1", self} {
			resp, err := n.http.Do(mustRequest(t, http.MethodPut, n.url+"/v1/members/1", `{"peer_urls": ["`+u+`"]}`))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("change %d, the previous one answered 200: %d %s", 2*i+1, resp.StatusCode, strings.TrimSpace(string(b)))
			}
		}
	}
}
