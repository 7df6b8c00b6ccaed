package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRoute checks that requests map, through the route table, to the fixed set of route labels, never
// to anything taken from the key.
func TestRoute(t *testing.T) {
	cases := []struct {
		method, target, route string
	}{
		{http.MethodGet, "/", routeRootKey},
		{http.MethodPut, "/my-key", routeRootKey},
		{http.MethodGet, "/a/b%2Fc?consistency=serializable", routeRootKey},
		{http.MethodHead, "/%6detrics", routeRootKey}, // an escaped reserved name: refused as a key
		{http.MethodPatch, "/k", routeRootKey},
		{http.MethodPost, "/4", routeRootMember},
		{http.MethodDelete, "/3", routeRootMember},
		{http.MethodGet, "/v1/kv/config/color", routeV1KV},
		{http.MethodPut, "/v1/kv/metrics", routeV1KV},
		{http.MethodGet, "/v1/kv/?prefix=a", routeV1List},
		{http.MethodDelete, "/v1/kv/?prefix=a", routeV1List},
		{http.MethodGet, "/v1/watch/k?prefix=true", routeV1Watch},
		{http.MethodGet, "/v1/members", routeV1Members},
		{http.MethodPost, "/v1/members/4/promote", routeV1Members},
		{http.MethodPost, "/v1/leader/transfer", routeV1Leader},
		{http.MethodGet, "/v1/status", routeV1Status},
		{http.MethodGet, "/v1/snapshot", routeV1Snapshot},
		{http.MethodPost, "/v1/txn", routeV1Txn},
		{http.MethodGet, "/v1/snapshot/x", routeOther},
		{http.MethodGet, "/livez", routeLivez},
		{http.MethodGet, "/readyz", routeReadyz},
		{http.MethodGet, "/health", routeHealth},
		{http.MethodGet, "/metrics", routeMetrics},
		{http.MethodGet, "/metrics/x", routeOther},
		{http.MethodGet, "/v1", routeOther},
		{http.MethodGet, "/v1/kv", routeOther},
		{http.MethodGet, "/v1/status/x", routeOther},
		{http.MethodGet, "/v1/leader", routeOther},
		{http.MethodGet, "/v1/nope/x", routeOther},
	}
	s := New(Config{})
	for _, c := range cases {
		r := httptest.NewRequest(c.method, c.target, nil)
		rt, _, _ := s.lookup(r, strings.TrimPrefix(r.URL.EscapedPath(), "/"))
		if got := rt.label; got != c.route {
			t.Errorf("%s %s: route %q, want %q", c.method, c.target, got, c.route)
		}
	}
}

// TestMethodLabel checks that unknown methods share one label value.
func TestMethodLabel(t *testing.T) {
	for m, want := range map[string]string{
		http.MethodGet: "GET", http.MethodDelete: "DELETE", http.MethodOptions: "OPTIONS",
		"BREW": "other", "get": "other",
	} {
		if got := method(httptest.NewRequest(m, "/k", nil)); got != want {
			t.Errorf("method(%q) = %q, want %q", m, got, want)
		}
	}
}
