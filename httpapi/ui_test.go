package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftkv/raftkv/httpapi"
	"github.com/raftkv/raftkv/internal/testcluster"
	"github.com/raftkv/raftkv/ui"
	"github.com/raftkv/raftkv/wire"
)

func dashboardFiles(t *testing.T) fs.FS {
	t.Helper()
	files, err := ui.Files()
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestUIFiles checks the dashboard's files as a browser gets them: each
// embedded file with its type, revalidated by ETag, locked to its own
// origin; the redirects and refusals around them.
func TestUIFiles(t *testing.T) {
	files := dashboardFiles(t)
	n := startSingleNodeWith(t, nodeOptions{limits: func(c *httpapi.Config) { c.UI = files }})
	types := map[string]string{".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
		".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
	count := 0
	err := fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		count++
		want, known := types[path.Ext(name)]
		if !known {
			t.Errorf("%s: the dashboard has a file of a type the test does not know", name)
			return nil
		}
		urlPath := "/ui/" + name
		if name == "index.html" {
			urlPath = "/ui/"
		}
		r := n.do(t, http.MethodGet, urlPath, nil)
		body, _ := fs.ReadFile(files, name)
		if r.status != http.StatusOK || string(r.body) != string(body) {
			t.Fatalf("GET %s = %d, %d bytes; want 200 and the file's %d bytes", urlPath, r.status, len(r.body), len(body))
		}
		h := r.header
		if got := h.Get("Content-Type"); got != want {
			t.Errorf("GET %s: Content-Type %q, want %q", urlPath, got, want)
		}
		if h.Get("Cache-Control") != "no-cache" || h.Get("ETag") == "" || h.Get("X-Content-Type-Options") != "nosniff" ||
			!strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: headers %v lack no-cache, an ETag, nosniff, the CSP or DENY", urlPath, h)
		}
		again := n.doHeader(t, http.MethodGet, urlPath, http.Header{"If-None-Match": {h.Get("ETag")}}, nil)
		if again.status != http.StatusNotModified || len(again.body) != 0 {
			t.Errorf("GET %s with its ETag = %d with %d bytes, want 304 and none", urlPath, again.status, len(again.body))
		}
		head := n.do(t, http.MethodHead, urlPath, nil)
		if head.status != http.StatusOK || len(head.body) != 0 || head.header.Get("Content-Length") != fmt.Sprint(len(body)) {
			t.Errorf("HEAD %s = %d, %d bytes, length %q", urlPath, head.status, len(head.body), head.header.Get("Content-Length"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count == 0 {
		t.Fatal("the dashboard has no files")
	}

	// /ui leads to /ui/, where the page's relative links work.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(n.url + "/ui")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Relative, so that it holds behind a proxy's path prefix.
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusMovedPermanently || loc != "ui/" {
		t.Errorf("GET /ui = %d to %q, want 301 to ui/", resp.StatusCode, loc)
	}

	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodGet, "/ui/nope.js", http.StatusNotFound, "not_found"},
		{http.MethodGet, "/ui/static/index.html", http.StatusNotFound, "not_found"},
		{http.MethodGet, "/ui/../v1/status", http.StatusNotFound, "not_found"},
		{http.MethodPut, "/ui/", http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodPut, "/ui", http.StatusMethodNotAllowed, "method_not_allowed"},
		// ui is reserved on the root API, as metrics is; uix is a key.
		{http.MethodGet, "/uix", http.StatusNotFound, "key_not_found"},
	} {
		r := n.do(t, c.method, c.path, nil)
		expect(t, c.method+" "+c.path, r, c.status, c.code)
	}
	if r := n.do(t, http.MethodPut, "/v1/kv/ui", []byte("v")); r.status != http.StatusOK {
		t.Errorf("PUT /v1/kv/ui = %d %s: a key named ui is reached through /v1/kv/", r.status, r.body)
	}

	// --disable-ui
	off := startSingleNode(t)
	r := off.do(t, http.MethodGet, "/ui/", nil)
	expect(t, "GET /ui/ with the dashboard off", r, http.StatusNotFound, "not_found")
	if !strings.Contains(string(r.body), "--disable-ui") {
		t.Errorf("GET /ui/ with the dashboard off = %s; want it to say why", r.body)
	}
}

// TestUIWithAccessControl: the page's files need no credentials (they hold
// no data), everything it reads does, and /v1/auth/self tells the page what
// the user may do.
func TestUIWithAccessControl(t *testing.T) {
	store := authStoreWith(t, map[string]any{
		"root":   map[string]any{"admin": true},
		"reader": map[string]any{"read": []string{"app/", "app/x", "b"}},
		"app":    map[string]any{"read": []string{"app/"}, "write": []string{"app/"}},
	})
	n := startSingleNodeWith(t, nodeOptions{limits: func(c *httpapi.Config) { c.UI = dashboardFiles(t); c.Auth = store }})
	if r := n.do(t, http.MethodGet, "/ui/", nil); r.status != http.StatusOK {
		t.Fatalf("GET /ui/ without credentials = %d %s", r.status, r.body)
	}
	for _, p := range []string{"/v1/stats", "/v1/auth/self", "/v1/members/1/status"} {
		expect(t, "GET "+p+" without credentials", n.do(t, http.MethodGet, p, nil), http.StatusUnauthorized, "auth_required")
	}
	for user, want := range map[string]wire.Self{
		"root":   {AccessControl: true, Kind: "user", Name: "root", Admin: true, Read: []string{""}, Write: []string{""}},
		"reader": {AccessControl: true, Kind: "user", Name: "reader", Read: []string{"app/", "b"}, Write: []string{}},
		"app":    {AccessControl: true, Kind: "user", Name: "app", Read: []string{"app/"}, Write: []string{"app/"}},
	} {
		r := n.doHeader(t, http.MethodGet, "/v1/auth/self", as(user), nil)
		var got wire.Self
		decodeStrict(t, r, &got)
		if fmt.Sprint(got) != fmt.Sprint(want) || string(r.body) == "" || strings.Contains(string(r.body), "null") {
			t.Errorf("GET /v1/auth/self as %s = %s, want %+v", user, r.body, want)
		}
	}
	if r := n.doHeader(t, http.MethodGet, "/v1/members/1/status", as("reader"), nil); r.status != http.StatusOK {
		t.Errorf("GET /v1/members/1/status as reader = %d %s", r.status, r.body)
	}
}

func TestAuthSelfWithoutAccessControl(t *testing.T) {
	n := startSingleNode(t)
	var got wire.Self
	decodeStrict(t, n.do(t, http.MethodGet, "/v1/auth/self", nil), &got)
	if got.AccessControl || !got.Admin || len(got.Read) != 1 || got.Read[0] != "" || len(got.Write) != 1 || got.Write[0] != "" {
		t.Errorf("GET /v1/auth/self without access control = %+v, want admin with every key", got)
	}
	expect(t, "GET /v1/auth/self?x=1", n.do(t, http.MethodGet, "/v1/auth/self?x=1", nil), http.StatusBadRequest, "invalid_parameter")
}

// TestStats checks that /v1/stats counts what the node served, in the
// second it served it.
func TestStats(t *testing.T) {
	n := startSingleNode(t)
	const puts, gets = 7, 5
	for i := range puts {
		if r := n.do(t, http.MethodPut, fmt.Sprintf("/v1/kv/k%d", i), []byte("v")); r.status != http.StatusOK {
			t.Fatalf("PUT = %d %s", r.status, r.body)
		}
	}
	for range gets {
		n.do(t, http.MethodGet, "/v1/kv/k0", nil)
	}
	n.do(t, http.MethodGet, "/v1/kv/?prefix=k", nil) // a listing is a read
	n.do(t, http.MethodGet, "/v1/status", nil)       // neither

	var st wire.Stats
	// The current second is left out of the samples: poll until it ends.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st = wire.Stats{}
		decodeStrict(t, n.do(t, http.MethodGet, "/v1/stats", nil), &st)
		var reads, writes uint64
		for _, s := range st.Samples {
			reads += s.Reads
			writes += s.Writes
		}
		if reads == gets+1 && writes == puts {
			break
		}
		if reads > gets+1 || writes > puts {
			t.Fatalf("/v1/stats counts %d reads and %d writes, more than the %d and %d made", reads, writes, gets+1, puts)
		}
		if time.Now().After(deadline) {
			t.Fatalf("/v1/stats counts %d reads and %d writes after 10 s, want %d and %d", reads, writes, gets+1, puts)
		}
		<-tick.C
	}
	if st.IntervalSeconds != 1 || len(st.Samples) != 300 {
		t.Fatalf("/v1/stats: interval %d, %d samples; want 1 and 300", st.IntervalSeconds, len(st.Samples))
	}
	for i, s := range st.Samples {
		if i > 0 && s.Time != st.Samples[i-1].Time+1 {
			t.Fatalf("sample %d at %d follows one at %d", i, s.Time, st.Samples[i-1].Time)
		}
		if (s.Reads+s.Writes > 0) != (s.P50Ms > 0) || s.P99Ms < s.P50Ms {
			t.Errorf("sample %+v: latency does not match its requests", s)
		}
	}
	expect(t, "GET /v1/stats?x=1", n.do(t, http.MethodGet, "/v1/stats?x=1", nil), http.StatusBadRequest, "invalid_parameter")
}

// TestMemberStatus asks one node for every member's status.
func TestMemberStatus(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	leader := c.WaitLeader()
	follower := leader%3 + 1
	other := follower%3 + 1
	f := clusterNode(t, c, follower)
	c.WaitFor("every member to publish its client URL", func() error {
		for _, id := range []uint64{1, 2, 3} {
			r := f.do(t, http.MethodGet, fmt.Sprintf("/v1/members/%d/status", id), nil)
			if r.status != http.StatusOK {
				return fmt.Errorf("member %d: %d %s", id, r.status, r.body)
			}
			var st wire.Status
			if err := json.Unmarshal(r.body, &st); err != nil {
				t.Fatal(err)
			}
			if st.ID != id || st.Leader != leader {
				t.Fatalf("GET /v1/members/%d/status = %s: want member %d's view, with leader %d", id, r.body, id, leader)
			}
			if id == leader && st.RaftState != "leader" {
				t.Fatalf("the leader's status says %s", st.RaftState)
			}
		}
		return nil
	})
	expect(t, "an unknown member", f.do(t, http.MethodGet, "/v1/members/9/status", nil), http.StatusNotFound, "member_not_found")
	expect(t, "a malformed id", f.do(t, http.MethodGet, "/v1/members/x/status", nil), http.StatusBadRequest, "invalid_member_id")
	expect(t, "POST", f.do(t, http.MethodPost, "/v1/members/1/status", nil), http.StatusMethodNotAllowed, "method_not_allowed")

	// A member that is down is reported, quickly, as unreachable.
	otherURL := c.ClientURL(other)
	if err := c.Stop(other); err != nil {
		t.Fatal(err)
	}
	r := f.do(t, http.MethodGet, fmt.Sprintf("/v1/members/%d/status", other), nil)
	expect(t, "a stopped member", r, http.StatusServiceUnavailable, "member_unreachable")

	// One that takes connections and never answers (a hung process, a
	// half-open network) is too, within the node's own bound, not the
	// client's 20 s.
	u, err := url.Parse(otherURL)
	if err != nil {
		t.Fatal(err)
	}
	hung, err := net.Listen("tcp", u.Host)
	if err != nil {
		t.Fatalf("listen on the stopped member's client address: %v", err)
	}
	var held []net.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := hung.Accept()
			if err != nil {
				return
			}
			held = append(held, conn)
		}
	}()
	t.Cleanup(func() {
		hung.Close()
		wg.Wait()
		for _, c := range held {
			c.Close()
		}
	})
	r = f.do(t, http.MethodGet, fmt.Sprintf("/v1/members/%d/status", other), nil)
	expect(t, "a member that never answers", r, http.StatusServiceUnavailable, "member_unreachable")

	// The query is checked here and passed on.
	expect(t, "an unknown parameter", f.do(t, http.MethodGet, fmt.Sprintf("/v1/members/%d/status?x=1", leader), nil),
		http.StatusBadRequest, "invalid_parameter")
	var st wire.Status
	decodeStrict(t, f.do(t, http.MethodGet, fmt.Sprintf("/v1/members/%d/status?hash=true", leader), nil), &st)
	if st.ID != leader || st.StateHash == "" {
		t.Errorf("GET /v1/members/%d/status?hash=true = %+v, want the leader's status with its hash", leader, st)
	}
}

// TestCrossOriginChangesRefused: a page of another origin cannot make a
// browser change anything, whatever credentials the browser holds; reads,
// this node's own pages and clients that are not browsers are unaffected.
func TestCrossOriginChangesRefused(t *testing.T) {
	n := startSingleNode(t)
	site := func(s string) http.Header { return http.Header{"Sec-Fetch-Site": {s}} }
	for _, s := range []string{"cross-site", "same-site"} {
		for _, c := range []struct{ method, path, body string }{
			{http.MethodPut, "/v1/kv/csrf", "x"},
			{http.MethodPost, "/v1/txn", `{"success": [{"put": {"key": "Y3NyZg==", "value": ""}}]}`},
			{http.MethodPut, "/csrf", "x"},
			{http.MethodDelete, "/v1/kv/?prefix=", ""},
			{http.MethodPost, "/4", "http://127.0.0.1:1"},
		} {
			r := n.doHeader(t, c.method, c.path, site(s), []byte(c.body))
			expect(t, c.method+" "+c.path+" from "+s, r, http.StatusForbidden, "cross_origin_request")
		}
		if r := n.doHeader(t, http.MethodGet, "/v1/kv/?prefix=", site(s), nil); r.status != http.StatusOK {
			t.Errorf("a %s listing = %d %s, want 200: reads are not refused", s, r.status, r.body)
		}
	}
	if r := n.do(t, http.MethodGet, "/v1/kv/csrf", nil); r.status != http.StatusNotFound {
		t.Fatalf("GET /v1/kv/csrf = %d %s after refused writes, want 404", r.status, r.body)
	}
	// Over plain http to another host browsers send no Sec-Fetch-Site,
	// only an Origin: one that is not this node is refused too.
	foreign := http.Header{"Origin": {"http://evil.example"}}
	expect(t, "a PUT with a foreign Origin", n.doHeader(t, http.MethodPut, "/v1/kv/csrf", foreign, []byte("x")),
		http.StatusForbidden, "cross_origin_request")
	self := http.Header{"Origin": {n.url}}
	for _, h := range []http.Header{site("same-origin"), site("none"), nil, self} {
		if r := n.doHeader(t, http.MethodPut, "/v1/kv/csrf", h, []byte("ok")); r.status != http.StatusOK {
			t.Errorf("PUT with %v = %d %s, want 200", h, r.status, r.body)
		}
	}

	// With access control on the refusal comes first: a cross-origin page
	// learns nothing of the credentials the browser sent.
	locked := startSingleNodeWith(t, nodeOptions{limits: func(c *httpapi.Config) {
		c.Auth = authStoreWith(t, map[string]any{"root": map[string]any{"admin": true}})
	}})
	expect(t, "a cross-site PUT with bad credentials", locked.doHeader(t, http.MethodPut, "/v1/kv/csrf",
		http.Header{"Sec-Fetch-Site": {"cross-site"}, "Authorization": {"Basic " + basicCredentials("root", "wrong")}}, []byte("x")),
		http.StatusForbidden, "cross_origin_request")
}
