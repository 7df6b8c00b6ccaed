package client

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// trickyKeys are keys that a careless client would change on the way: bytes
// with a meaning in URLs, segments a router cleans, and bytes that are not
// UTF-8.
var trickyKeys = []string{
	"plain", "a b", "100%", "what?", "#frag", "?x=1&y=2", "+plus", "~tilde",
	"a/b", "a//b", "/lead", "trail/", "/", "//", ".", "..", "a/./b", "a/../b", "./x",
	"a%2Fb", "%00", "\x00\xff\xfe", "é", "tab\there", "new\nline", "semi;colon", "back\\slash",
}

// TestEscapeKeyThroughServeMux sends every tricky key through a real
// http.ServeMux with the {key...} pattern the API uses and checks that the
// handler sees exactly the key: no redirect, no cleaning, no lost bytes.
func TestEscapeKeyThroughServeMux(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/kv/{key...}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.PathValue("key"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(hc.CloseIdleConnections)
	for _, key := range trickyKeys {
		req, err := http.NewRequest(http.MethodPut, srv.URL+"/v1/kv/"+escapeKey([]byte(key)), nil)
		if err != nil {
			t.Fatalf("key %q: %v", key, err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("key %q: %v", key, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(got) != key {
			t.Errorf("key %q escaped as %q: status %d, server saw %q", key, escapeKey([]byte(key)), resp.StatusCode, got)
		}
	}
}

func TestEscapeKeyKeepsReadableSlashes(t *testing.T) {
	for key, want := range map[string]string{
		"config/color": "config/color",
		"a b/c":        "a%20b/c",
		"a//b":         "a%2F%2Fb",
		"a/../b":       "a%2F%2E%2E%2Fb",
		"v1.2/x":       "v1.2/x",
	} {
		if got := escapeKey([]byte(key)); got != want {
			t.Errorf("escapeKey(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestParseETag(t *testing.T) {
	for in, want := range map[string]uint64{`"42"`: 42, `42`: 42, `W/"7"`: 7, ``: 0, `"x"`: 0} {
		if got, _ := parseETag(in); got != want {
			t.Errorf("parseETag(%q) = %d, want %d", in, got, want)
		}
	}
}
