package httpapi_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/httpapi"
)

// TestPprof: with EnablePprof, Go's profiler answers at /debug/pprof/ (the
// index, a named profile, a short CPU profile); without it, the path is a
// key of the root API as before.
func TestPprof(t *testing.T) {
	n := startSingleNodeWith(t, nodeOptions{limits: func(c *httpapi.Config) { c.EnablePprof = true }})
	r := n.do(t, http.MethodGet, "/debug/pprof/", nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "goroutine") {
		t.Fatalf("GET /debug/pprof/: %d %.200s", r.status, r.body)
	}
	r = n.do(t, http.MethodGet, "/debug/pprof/goroutine?debug=1", nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "goroutine profile:") {
		t.Fatalf("GET /debug/pprof/goroutine: %d %.200s", r.status, r.body)
	}
	// A CPU profile is a gzipped protobuf.
	r = n.do(t, http.MethodGet, "/debug/pprof/profile?seconds=1", nil)
	if r.status != http.StatusOK || !bytes.HasPrefix(r.body, []byte{0x1f, 0x8b}) {
		t.Fatalf("GET /debug/pprof/profile: %d %.200q", r.status, r.body)
	}
	r = n.do(t, http.MethodGet, "/debug/pprof/profile?seconds=x", nil)
	expect(t, "a profile of x seconds", r, http.StatusBadRequest, "invalid_seconds")
	// Keys still work everywhere else.
	if r := n.do(t, http.MethodPut, "/debug/other", []byte("v")); r.status != http.StatusNoContent && r.status != http.StatusOK {
		t.Fatalf("PUT /debug/other: %d %s", r.status, r.body)
	}

	off := startSingleNode(t)
	if r := off.do(t, http.MethodGet, "/debug/pprof/", nil); r.status != http.StatusNotFound {
		t.Fatalf("GET /debug/pprof/ without EnablePprof: %d %.200s, want the root API's 404 for a missing key", r.status, r.body)
	}
}

// TestPprofNeedsAdmin: profiles show the command line and memory by
// allocation site, so with access control on only an admin gets them.
func TestPprofNeedsAdmin(t *testing.T) {
	store := authStoreWith(t, map[string]any{
		"root":   map[string]any{"admin": true},
		"reader": map[string]any{"read": []string{""}},
	})
	n := startSingleNodeWith(t, nodeOptions{limits: func(c *httpapi.Config) { c.Auth = store; c.EnablePprof = true }})
	for _, c := range []struct {
		user   string
		status int
	}{{"", http.StatusUnauthorized}, {"reader", http.StatusForbidden}, {"root", http.StatusOK}} {
		r := n.doHeader(t, http.MethodGet, "/debug/pprof/cmdline", as(c.user), nil)
		if r.status != c.status {
			t.Fatalf("GET /debug/pprof/cmdline as %q: %d %s, want %d", c.user, r.status, r.body, c.status)
		}
	}
}
