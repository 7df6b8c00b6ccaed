package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftkv/raftkv/kvstore"
)

// putResponse, deleteResponse and listResponse are the documented JSON
// bodies (docs/API.md); decoding is strict so that a renamed field fails.
type putResponse struct {
	Revision       uint64 `json:"revision"`
	CreateRevision uint64 `json:"create_revision"`
	ModRevision    uint64 `json:"mod_revision"`
	Version        uint64 `json:"version"`
	Created        bool   `json:"created"`
}

type deleteResponse struct {
	Revision uint64 `json:"revision"`
	Deleted  int    `json:"deleted"`
}

type listedKV struct {
	Key            []byte  `json:"key"`
	Value          *[]byte `json:"value"`
	CreateRevision uint64  `json:"create_revision"`
	ModRevision    uint64  `json:"mod_revision"`
	Version        uint64  `json:"version"`
}

type listResponse struct {
	Revision   uint64     `json:"revision"`
	KVs        []listedKV `json:"kvs"`
	More       bool       `json:"more"`
	NextCursor string     `json:"next_cursor"`
}

func decodeStrict(t *testing.T, r response, v any) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json (body %s)", ct, r.body)
	}
	d := json.NewDecoder(bytes.NewReader(r.body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func headerUint(t *testing.T, r response, name string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(r.header.Get(name), 10, 64)
	if err != nil {
		t.Fatalf("header %s = %q: %v", name, r.header.Get(name), err)
	}
	return n
}

func quoted(rev uint64) string { return `"` + strconv.FormatUint(rev, 10) + `"` }

// kvPath is the /v1 path of a key, every byte percent-encoded as a client
// that wants binary keys would do.
func kvPath(key string) string {
	var b strings.Builder
	b.WriteString("/v1/kv/")
	for i := range len(key) {
		fmt.Fprintf(&b, "%%%02X", key[i])
	}
	return b.String()
}

func (n *node) putV1(t *testing.T, key, value string, header http.Header) putResponse {
	t.Helper()
	r := n.doHeader(t, http.MethodPut, kvPath(key), header, []byte(value))
	if r.status != http.StatusOK {
		t.Fatalf("PUT %q = %d %s", key, r.status, r.body)
	}
	var p putResponse
	decodeStrict(t, r, &p)
	if got := r.header.Get("ETag"); got != quoted(p.ModRevision) {
		t.Fatalf("PUT %q: ETag %q, want %q", key, got, quoted(p.ModRevision))
	}
	if got := headerUint(t, r, "X-Raftkv-Revision"); got != p.Revision {
		t.Fatalf("PUT %q: X-Raftkv-Revision %d, body revision %d", key, got, p.Revision)
	}
	return p
}

func (n *node) list(t *testing.T, query string) listResponse {
	t.Helper()
	r := n.do(t, http.MethodGet, "/v1/kv/?"+query, nil)
	if r.status != http.StatusOK {
		t.Fatalf("list ?%s = %d %s", query, r.status, r.body)
	}
	var l listResponse
	decodeStrict(t, r, &l)
	if got := headerUint(t, r, "X-Raftkv-Revision"); got != l.Revision {
		t.Fatalf("list: X-Raftkv-Revision %d, body revision %d", got, l.Revision)
	}
	return l
}

// TestV1BadInput fires every malformed /v1 request and checks the exact
// status and code, that nothing changed, and that the node still serves.
func TestV1BadInput(t *testing.T) {
	n := startSingleNode(t)
	n.putV1(t, "existing", "v", nil)
	longKey := strings.Repeat("k", testMaxKey+1)
	h := func(kv ...string) http.Header {
		hd := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			hd.Add(kv[i], kv[i+1])
		}
		return hd
	}
	cases := []struct {
		method, path string
		header       http.Header
		body         []byte
		status       int
		code         string
	}{
		// keys and limits
		{"PUT", "/v1/kv/", nil, []byte("v"), 400, "empty_key"},
		{"PUT", "/v1/kv/?prefix=e", nil, []byte("v"), 400, "empty_key"},
		{"DELETE", "/v1/kv/", nil, nil, 400, "empty_key"},
		{"DELETE", "/v1/kv/?limit=5", nil, nil, 400, "empty_key"},
		{"PUT", "/v1/kv/" + longKey, nil, []byte("v"), 413, "key_too_large"},
		{"GET", "/v1/kv/" + longKey, nil, nil, 413, "key_too_large"},
		{"DELETE", "/v1/kv/" + longKey, nil, nil, 413, "key_too_large"},
		{"PUT", "/v1/kv/big", nil, bytes.Repeat([]byte("v"), testMaxRequest+1), 413, "request_too_large"},
		{"GET", "/v1/kv/missing", nil, nil, 404, "key_not_found"},
		{"DELETE", "/v1/kv/missing", nil, nil, 404, "key_not_found"},
		// query parameters
		{"GET", "/v1/kv/existing?consistency=eventual", nil, nil, 400, "invalid_consistency"},
		{"GET", "/v1/kv/?consistency=eventual", nil, nil, 400, "invalid_consistency"},
		{"GET", "/v1/kv/existing?consistency=serializable&consistency=linearizable", nil, nil, 400, "invalid_parameter"},
		{"GET", "/v1/kv/existing?prefix=e", nil, nil, 400, "invalid_parameter"},
		{"DELETE", "/v1/kv/existing?prefix=", nil, nil, 400, "invalid_parameter"},
		{"PUT", "/v1/kv/existing?prefix=e", nil, []byte("v"), 400, "invalid_parameter"},
		{"GET", "/v1/kv/?limit=0", nil, nil, 400, "invalid_limit"},
		{"GET", "/v1/kv/?limit=10001", nil, nil, 400, "invalid_limit"},
		{"GET", "/v1/kv/?limit=-1", nil, nil, 400, "invalid_limit"},
		{"GET", "/v1/kv/?limit=abc", nil, nil, 400, "invalid_limit"},
		{"GET", "/v1/kv/?limit=", nil, nil, 400, "invalid_limit"},
		{"GET", "/v1/kv/?limit=1.5", nil, nil, 400, "invalid_limit"},
		{"GET", "/v1/kv/?limit=%2B5", nil, nil, 400, "invalid_limit"},
		{"GET", "/v1/kv/?cursor=", nil, nil, 400, "invalid_cursor"},
		{"GET", "/v1/kv/?cursor=!!", nil, nil, 400, "invalid_cursor"},
		{"GET", "/v1/kv/?cursor=ZXhpc3Rpbmc%3D", nil, nil, 400, "invalid_cursor"}, // padded
		{"GET", "/v1/kv/?cursor=" + base64.RawURLEncoding.EncodeToString([]byte(longKey)), nil, nil, 400, "invalid_cursor"},
		// a cursor this API never returned for the prefix: not the end of
		// the list, and not a silent restart from the first key
		{"GET", "/v1/kv/?prefix=config/&cursor=zzz", nil, nil, 400, "invalid_cursor"},
		{"GET", "/v1/kv/?prefix=config/&cursor=" + base64.RawURLEncoding.EncodeToString([]byte("existing")), nil, nil, 400, "invalid_cursor"},
		{"GET", "/v1/kv/?prefix=config/&cursor=" + base64.RawURLEncoding.EncodeToString([]byte("config")), nil, nil, 400, "invalid_cursor"},
		{"GET", "/v1/kv/?cursor=ZXhpc3Rpbmd", nil, nil, 400, "invalid_cursor"}, // non-canonical final bits
		// a misspelt parameter is refused, not ignored: prefx= would
		// otherwise list every key
		{"GET", "/v1/kv/?prefx=config/", nil, nil, 400, "invalid_parameter"},
		{"GET", "/v1/kv/existing?bogus=1", nil, nil, 400, "invalid_parameter"},
		{"PUT", "/v1/kv/existing?consistency=serializable", nil, []byte("v"), 400, "invalid_parameter"},
		{"DELETE", "/v1/kv/existing?limit=1", nil, nil, 400, "invalid_parameter"},
		{"DELETE", "/v1/kv/?prefix=e&limit=1", nil, nil, 400, "invalid_parameter"},
		{"GET", "/v1/watch/existing?form=3", nil, nil, 400, "invalid_parameter"},
		{"GET", "/v1/kv/?keys_only=yes", nil, nil, 400, "invalid_parameter"},
		{"GET", "/v1/kv/?keys_only=1", nil, nil, 400, "invalid_parameter"},
		{"GET", "/v1/kv/?prefix=a&prefix=b", nil, nil, 400, "invalid_parameter"},
		{"DELETE", "/v1/kv/?prefix=e&prefix=x", nil, nil, 400, "invalid_parameter"},
		{"DELETE", "/v1/kv/?prefix=%ZZ", nil, nil, 400, "invalid_parameter"},
		{"DELETE", "/v1/kv/?prefix=e;x=1", nil, nil, 400, "invalid_parameter"},
		{"DELETE", "/v1/kv/?prefix=" + longKey, nil, nil, 413, "key_too_large"},
		// encoding: base64 or text, on the requests that answer keys in JSON
		{"GET", "/v1/kv/?encoding=hex", nil, nil, 400, "invalid_encoding"},
		{"GET", "/v1/kv/?encoding=", nil, nil, 400, "invalid_encoding"},
		{"GET", "/v1/kv/?encoding=TEXT", nil, nil, 400, "invalid_encoding"},
		{"GET", "/v1/kv/?encoding=utf-8", nil, nil, 400, "invalid_encoding"},
		{"GET", "/v1/kv/?encoding=text&encoding=base64", nil, nil, 400, "invalid_parameter"},
		{"GET", "/v1/kv/?encodng=text", nil, nil, 400, "invalid_parameter"},
		{"GET", "/v1/kv/existing?encoding=text", nil, nil, 400, "invalid_parameter"}, // the raw value, never JSON
		{"PUT", "/v1/kv/existing?encoding=text", nil, []byte("v"), 400, "invalid_parameter"},
		{"DELETE", "/v1/kv/existing?encoding=base64", nil, nil, 400, "invalid_parameter"},
		{"DELETE", "/v1/kv/?prefix=e&encoding=text", nil, nil, 400, "invalid_parameter"},
		{"GET", "/v1/kv/?prefix=" + longKey, nil, nil, 413, "key_too_large"},
		// preconditions
		{"PUT", "/v1/kv/existing", h("If-Match", "abc"), []byte("v"), 400, "invalid_precondition"},
		{"PUT", "/v1/kv/existing", h("If-Match", `W/"2"`), []byte("v"), 400, "invalid_precondition"},
		{"PUT", "/v1/kv/existing", h("If-Match", `"2", "3"`), []byte("v"), 400, "invalid_precondition"},
		{"PUT", "/v1/kv/existing", h("If-Match", `"2"`, "If-Match", `"3"`), []byte("v"), 400, "invalid_precondition"},
		{"PUT", "/v1/kv/existing", h("If-Match", ""), []byte("v"), 400, "invalid_precondition"},
		{"PUT", "/v1/kv/existing", h("If-Match", `""`), []byte("v"), 400, "invalid_precondition"},
		{"PUT", "/v1/kv/existing", h("If-Match", `"0"`), []byte("v"), 400, "invalid_precondition"},
		{"PUT", "/v1/kv/existing", h("If-Match", "-2"), []byte("v"), 400, "invalid_precondition"},
		{"PUT", "/v1/kv/existing", h("If-Match", "+2"), []byte("v"), 400, "invalid_precondition"},
		{"PUT", "/v1/kv/existing", h("If-Match", "0x2"), []byte("v"), 400, "invalid_precondition"},
		{"PUT", "/v1/kv/existing", h("If-Match", `"2`), []byte("v"), 400, "invalid_precondition"},
		{"PUT", "/v1/kv/existing", h("If-Match", `"*"`), []byte("v"), 400, "invalid_precondition"},
		{"PUT", "/v1/kv/existing", h("If-Match", "99999999999999999999999"), []byte("v"), 400, "invalid_precondition"},
		{"PUT", "/v1/kv/existing", h("If-None-Match", `"2"`), []byte("v"), 400, "invalid_precondition"},
		{"PUT", "/v1/kv/existing", h("If-None-Match", "*, *"), []byte("v"), 400, "invalid_precondition"},
		{"PUT", "/v1/kv/existing", h("If-None-Match", `W/*`), []byte("v"), 400, "invalid_precondition"},
		{"PUT", "/v1/kv/existing", h("If-Match", "*", "If-None-Match", "*"), []byte("v"), 400, "invalid_precondition"},
		{"DELETE", "/v1/kv/existing", h("If-None-Match", "*"), nil, 400, "invalid_precondition"},
		{"DELETE", "/v1/kv/existing", h("If-Match", "abc"), nil, 400, "invalid_precondition"},
		{"DELETE", "/v1/kv/?prefix=e", h("If-Match", "*"), nil, 400, "invalid_precondition"},
		{"DELETE", "/v1/kv/?prefix=e", h("If-None-Match", "*"), nil, 400, "invalid_precondition"},
		// methods and paths
		{"PATCH", "/v1/kv/existing", nil, []byte("v"), 405, "method_not_allowed"},
		{"POST", "/v1/kv/", nil, []byte("v"), 405, "method_not_allowed"},
		{"OPTIONS", "/v1/kv/existing", nil, nil, 405, "method_not_allowed"},
		{"PUT", "/v1/watch/existing", nil, []byte("v"), 405, "method_not_allowed"},
		{"DELETE", "/v1/watch/?prefix=true", nil, nil, 405, "method_not_allowed"},
		{"GET", "/v1", nil, nil, 404, "not_found"},
		{"GET", "/v1/", nil, nil, 404, "not_found"},
		{"GET", "/v1/kv", nil, nil, 404, "not_found"},
		{"GET", "/v1/watch", nil, nil, 404, "not_found"},
		{"GET", "/v1/keys/existing", nil, nil, 404, "not_found"},
		{"PUT", "/v1/kvs/existing", nil, []byte("v"), 404, "not_found"},
		{"GET", "/v1/%6Bv/existing", nil, nil, 404, "not_found"},
		{"GET", "/livez/x", nil, nil, 404, "not_found"},
		{"GET", "/readyz/", nil, nil, 404, "not_found"},
		{"GET", "/health/check", nil, nil, 404, "not_found"},
		// watch parameters
		{"GET", "/v1/watch/", nil, nil, 400, "empty_key"},
		{"GET", "/v1/watch/?prefix=false", nil, nil, 400, "empty_key"},
		{"GET", "/v1/watch/" + longKey, nil, nil, 413, "key_too_large"},
		{"GET", "/v1/watch/" + longKey + "?prefix=true", nil, nil, 413, "key_too_large"},
		{"GET", "/v1/watch/existing?prefix=yes", nil, nil, 400, "invalid_parameter"},
		{"GET", "/v1/watch/existing?prefix=%ZZ", nil, nil, 400, "invalid_parameter"},
		{"GET", "/v1/watch/existing?from=0", nil, nil, 400, "invalid_revision"},
		{"GET", "/v1/watch/existing?from=-1", nil, nil, 400, "invalid_revision"},
		{"GET", "/v1/watch/existing?from=abc", nil, nil, 400, "invalid_revision"},
		{"GET", "/v1/watch/existing?from=", nil, nil, 400, "invalid_revision"},
		{"GET", "/v1/watch/existing?from=99999999999999999999999", nil, nil, 400, "invalid_revision"},
		{"GET", "/v1/watch/existing?from=1&from=2", nil, nil, 400, "invalid_parameter"},
		{"GET", "/v1/watch/existing?encoding=hex", nil, nil, 400, "invalid_encoding"},
		{"GET", "/v1/watch/?prefix=true&encoding=", nil, nil, 400, "invalid_encoding"},
		{"GET", "/v1/watch/existing?encoding=text&encoding=text", nil, nil, 400, "invalid_parameter"},
		{"GET", "/v1/watch/existing", h("Last-Event-Id", "abc"), nil, 400, "invalid_revision"},
		{"GET", "/v1/watch/existing", h("Last-Event-Id", "-1"), nil, 400, "invalid_revision"},
		{"GET", "/v1/watch/existing", h("Last-Event-Id", "18446744073709551615"), nil, 400, "invalid_revision"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s %.50s %v", c.method, c.path, c.header), func(t *testing.T) {
			store := n.srv.KV().Store()
			before, keys := store.Revision(), store.Len()
			r := n.doHeader(t, c.method, c.path, c.header, c.body)
			if r.status != c.status {
				t.Fatalf("status = %d %s, want %d", r.status, r.body, c.status)
			}
			if got := errorCode(t, r); got != c.code {
				t.Fatalf("code = %q, want %q", got, c.code)
			}
			if r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("Content-Type = %q", r.header.Get("Content-Type"))
			}
			if c.status == 405 {
				want := "GET, HEAD, PUT, DELETE"
				if strings.HasPrefix(c.path, "/v1/watch/") {
					want = "GET"
				}
				if got := r.header.Get("Allow"); got != want {
					t.Fatalf("Allow = %q, want %q", got, want)
				}
			}
			if after := store.Revision(); after != before || store.Len() != keys {
				t.Fatalf("store moved from revision %d (%d keys) to %d (%d keys)", before, keys, after, store.Len())
			}
			if n := n.srv.KV().Watchers(); n != 0 {
				t.Fatalf("%d watchers left open", n)
			}
			if r := n.do(t, http.MethodGet, "/v1/kv/existing", nil); r.status != 200 || string(r.body) != "v" {
				t.Fatalf("node unhealthy afterwards: GET /v1/kv/existing = %d %q", r.status, r.body)
			}
		})
	}
}

// TestV1KeyRoundTrip writes, reads, overwrites and deletes keys through
// every /v1/kv endpoint, binary and reserved names included.
func TestV1KeyRoundTrip(t *testing.T) {
	n := startSingleNode(t)
	keys := []string{"plain", "a/b", "a//b", "a/../b", "\x00\xff/", "sp ace?#%", "v1", "metrics", "k"}
	for _, key := range keys {
		value := "value of " + key
		p := n.putV1(t, key, value, nil)
		if !p.Created || p.Version != 1 || p.CreateRevision != p.Revision || p.ModRevision != p.Revision {
			t.Fatalf("PUT %q (create) = %+v", key, p)
		}
		for _, q := range []string{"", "?consistency=serializable", "?consistency=linearizable"} {
			r := n.do(t, http.MethodGet, kvPath(key)+q, nil)
			if r.status != 200 || string(r.body) != value {
				t.Fatalf("GET %q%s = %d %q, want %q", key, q, r.status, r.body, value)
			}
			checkItemHeaders(t, r, p.CreateRevision, p.ModRevision, 1)
			if headerUint(t, r, "X-Raftkv-Revision") < p.Revision {
				t.Fatalf("GET %q read at revision %s, before the write at %d", key, r.header.Get("X-Raftkv-Revision"), p.Revision)
			}
		}
		r := n.do(t, http.MethodHead, kvPath(key), nil)
		if r.status != 200 || len(r.body) != 0 || r.header.Get("Content-Length") != strconv.Itoa(len(value)) {
			t.Fatalf("HEAD %q = %d, %d body bytes, Content-Length %q", key, r.status, len(r.body), r.header.Get("Content-Length"))
		}
		checkItemHeaders(t, r, p.CreateRevision, p.ModRevision, 1)

		p2 := n.putV1(t, key, "", nil)
		if p2.Created || p2.Version != 2 || p2.CreateRevision != p.CreateRevision || p2.ModRevision != p2.Revision || p2.Revision <= p.Revision {
			t.Fatalf("PUT %q (update) = %+v after %+v", key, p2, p)
		}
		if r := n.do(t, http.MethodGet, kvPath(key), nil); r.status != 200 || len(r.body) != 0 {
			t.Fatalf("GET %q after an empty write = %d %q", key, r.status, r.body)
		} else {
			checkItemHeaders(t, r, p.CreateRevision, p2.Revision, 2)
		}
	}
	// Escaped and unescaped slashes name the same key; a doubled one does not.
	if r := n.do(t, http.MethodGet, "/v1/kv/a%2Fb", nil); r.status != 200 {
		t.Fatalf("GET /v1/kv/a%%2Fb = %d", r.status)
	}
	if r := n.do(t, http.MethodGet, "/v1/kv/a/b", nil); r.status != 200 {
		t.Fatalf("GET /v1/kv/a/b = %d", r.status)
	}
	// The root API and /v1 share one keyspace.
	if r := n.do(t, http.MethodPut, "/shared", []byte("root")); r.status != http.StatusNoContent {
		t.Fatalf("root PUT = %d", r.status)
	}
	if r := n.do(t, http.MethodGet, "/v1/kv/shared", nil); r.status != 200 || string(r.body) != "root" {
		t.Fatalf("GET /v1/kv/shared = %d %q", r.status, r.body)
	}

	for _, key := range keys {
		r := n.do(t, http.MethodDelete, kvPath(key), nil)
		var d deleteResponse
		if r.status != 200 {
			t.Fatalf("DELETE %q = %d %s", key, r.status, r.body)
		}
		decodeStrict(t, r, &d)
		if d.Deleted != 1 || headerUint(t, r, "X-Raftkv-Revision") != d.Revision {
			t.Fatalf("DELETE %q = %+v, X-Raftkv-Revision %s", key, d, r.header.Get("X-Raftkv-Revision"))
		}
		r = n.do(t, http.MethodGet, kvPath(key), nil)
		if r.status != 404 || errorCode(t, r) != "key_not_found" || headerUint(t, r, "X-Raftkv-Revision") < d.Revision {
			t.Fatalf("GET %q after delete = %d %s (revision %s)", key, r.status, r.body, r.header.Get("X-Raftkv-Revision"))
		}
		if r := n.do(t, http.MethodHead, kvPath(key), nil); r.status != 404 {
			t.Fatalf("HEAD %q after delete = %d", key, r.status)
		}
		if r := n.do(t, http.MethodDelete, kvPath(key), nil); r.status != 404 || errorCode(t, r) != "key_not_found" {
			t.Fatalf("second DELETE %q = %d %s", key, r.status, r.body)
		}
	}
	// A recreated key starts over.
	p := n.putV1(t, "k", "again", nil)
	if !p.Created || p.Version != 1 || p.CreateRevision != p.Revision {
		t.Fatalf("recreate = %+v", p)
	}
}

func checkItemHeaders(t *testing.T, r response, create, mod, version uint64) {
	t.Helper()
	if got := r.header.Get("ETag"); got != quoted(mod) {
		t.Fatalf("ETag = %q, want %q", got, quoted(mod))
	}
	if c, m, v := headerUint(t, r, "X-Raftkv-Create-Revision"), headerUint(t, r, "X-Raftkv-Mod-Revision"), headerUint(t, r, "X-Raftkv-Version"); c != create || m != mod || v != version {
		t.Fatalf("create/mod/version headers = %d/%d/%d, want %d/%d/%d", c, m, v, create, mod, version)
	}
}

// TestV1ConditionalWrites checks If-Match and If-None-Match: a failed
// condition answers 412 with the current ETag and changes nothing, and
// concurrent compare-and-swaps on one revision let exactly one win.
func TestV1ConditionalWrites(t *testing.T) {
	n := startSingleNode(t)
	hdr := func(k, v string) http.Header { return http.Header{k: {v}} }
	expect412 := func(method, key string, h http.Header, etag string) {
		t.Helper()
		before := n.srv.KV().Store().Revision()
		r := n.doHeader(t, method, kvPath(key), h, []byte("nope"))
		if r.status != http.StatusPreconditionFailed || errorCode(t, r) != "precondition_failed" {
			t.Fatalf("%s %q %v = %d %s, want 412 precondition_failed", method, key, h, r.status, r.body)
		}
		if got := r.header.Get("ETag"); got != etag {
			t.Fatalf("%s %q %v: ETag %q, want %q", method, key, h, got, etag)
		}
		if after := n.srv.KV().Store().Revision(); after != before {
			t.Fatalf("a failed condition moved the store from %d to %d", before, after)
		}
	}
	value := func(key string) string {
		t.Helper()
		r := n.do(t, http.MethodGet, kvPath(key), nil)
		if r.status != 200 {
			t.Fatalf("GET %q = %d", key, r.status)
		}
		return string(r.body)
	}

	// Create only.
	lock := n.putV1(t, "lock", "owner-1", hdr("If-None-Match", "*"))
	if !lock.Created {
		t.Fatalf("create-only PUT = %+v", lock)
	}
	expect412(http.MethodPut, "lock", hdr("If-None-Match", "*"), quoted(lock.ModRevision))
	if v := value("lock"); v != "owner-1" {
		t.Fatalf("lock = %q after a refused create", v)
	}

	// Compare-and-swap on the mod revision, quoted or not.
	expect412(http.MethodPut, "lock", hdr("If-Match", quoted(lock.ModRevision+100)), quoted(lock.ModRevision))
	cas := n.putV1(t, "lock", "owner-2", hdr("If-Match", quoted(lock.ModRevision)))
	expect412(http.MethodPut, "lock", hdr("If-Match", quoted(lock.ModRevision)), quoted(cas.ModRevision))
	cas2 := n.putV1(t, "lock", "owner-3", hdr("If-Match", strconv.FormatUint(cas.ModRevision, 10)))
	if cas2.Version != 3 || value("lock") != "owner-3" {
		t.Fatalf("after two swaps: %+v, value %q", cas2, value("lock"))
	}

	// If-Match: * needs the key to exist; no ETag when it does not.
	expect412(http.MethodPut, "absent", hdr("If-Match", "*"), "")
	expect412(http.MethodPut, "absent", hdr("If-Match", `"1"`), "")
	n.putV1(t, "lock", "owner-4", hdr("If-Match", "*"))

	// Deletes.
	cur := n.putV1(t, "lock", "owner-5", nil)
	expect412(http.MethodDelete, "lock", hdr("If-Match", quoted(cas2.ModRevision)), quoted(cur.ModRevision))
	expect412(http.MethodDelete, "absent", hdr("If-Match", "*"), "")
	r := n.doHeader(t, http.MethodDelete, kvPath("lock"), hdr("If-Match", quoted(cur.ModRevision)), nil)
	if r.status != 200 {
		t.Fatalf("conditional DELETE = %d %s", r.status, r.body)
	}
	if r := n.do(t, http.MethodGet, kvPath("lock"), nil); r.status != 404 {
		t.Fatalf("GET after conditional delete = %d", r.status)
	}

	// Racing compare-and-swaps on one revision: the state machine lets one
	// through.
	base := n.putV1(t, "counter", "0", nil)
	const racers = 8
	statuses := make([]int, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			req, err := http.NewRequest(http.MethodPut, n.url+kvPath("counter"), strings.NewReader(strconv.Itoa(i+1)))
			if err != nil {
				return
			}
			req.Header.Set("If-Match", quoted(base.ModRevision))
			resp, err := n.http.Do(req)
			if err != nil {
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	won := 0
	for i, s := range statuses {
		switch s {
		case 200:
			won++
		case 412:
		default:
			t.Fatalf("racer %d: status %d", i, s)
		}
	}
	if won != 1 {
		t.Fatalf("%d racers won a compare-and-swap on one revision (statuses %v)", won, statuses)
	}
}

// TestV1List pages through 2500 keys and checks order, limits, cursors,
// keys_only and the prefix filter.
func TestV1List(t *testing.T) {
	n := startSingleNode(t)
	const total = 2500
	var want []string
	for i := range total {
		want = append(want, fmt.Sprintf("l/%04d", i))
	}
	// Write concurrently so the writes share fsyncs.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make(chan error, total)
	var wg sync.WaitGroup
	const workers = 16
	for w := range workers {
		wg.Go(func() {
			for i := w; i < total; i += workers {
				if _, err := n.srv.KV().Put(ctx, []byte(want[i]), []byte("v"+want[i]), kvstore.Condition{}, 0); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Neighbours that the prefix must exclude, an empty value and a binary key.
	for _, k := range []string{"l", "l.", "l0", "k/9999"} {
		n.putV1(t, k, "", nil)
	}

	for _, c := range []struct {
		query string
		pages []int // the sizes of the pages to read
		want  []string
	}{
		{"prefix=l/", []int{1000, 1000, 500}, want},
		{"prefix=l/&limit=1000&consistency=serializable", []int{1000, 1000, 500}, want},
		{"prefix=l%2F&limit=700&keys_only=true", []int{700, 700, 700, 400}, want},
		{"prefix=l/&limit=2500", []int{2500}, want},
		{"prefix=l/&limit=10000&keys_only=false", []int{2500}, want},
		{"prefix=l/1&limit=1", []int{1, 1, 1, 1, 1}, want[1000:1005]},
	} {
		t.Run(c.query, func(t *testing.T) {
			q, _ := url.ParseQuery(c.query)
			keysOnly := q.Get("keys_only") == "true"
			var got []string
			cursor := ""
			for page, size := range c.pages {
				query := c.query
				if cursor != "" {
					query += "&cursor=" + cursor
				}
				l := n.list(t, query)
				if len(l.KVs) != size {
					t.Fatalf("page %d has %d keys, want %d", page, len(l.KVs), size)
				}
				for _, kv := range l.KVs {
					got = append(got, string(kv.Key))
					switch {
					case keysOnly && kv.Value != nil:
						t.Fatalf("keys_only listing has a value for %q", kv.Key)
					case !keysOnly && (kv.Value == nil || string(*kv.Value) != "v"+string(kv.Key)):
						t.Fatalf("listing has value %v for %q", kv.Value, kv.Key)
					case kv.Version != 1 || kv.CreateRevision != kv.ModRevision || kv.ModRevision == 0 || kv.ModRevision > l.Revision:
						t.Fatalf("listing item %+v at revision %d", kv, l.Revision)
					}
				}
				wantMore := page < len(c.pages)-1 || c.query == "prefix=l/1&limit=1"
				if l.More != wantMore || l.More != (l.NextCursor != "") {
					t.Fatalf("page %d: more = %v with next_cursor %q, want more = %v", page, l.More, l.NextCursor, wantMore)
				}
				cursor = l.NextCursor
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("listed %d keys, want %d in order (first %q)", len(got), len(c.want), got[:min(3, len(got))])
			}
		})
	}

	// The default limit, and every key without a prefix.
	if l := n.list(t, ""); len(l.KVs) != 1000 || !l.More || string(l.KVs[0].Key) != "k/9999" {
		t.Fatalf("unprefixed first page: %d keys, more %v, first %q", len(l.KVs), l.More, l.KVs[0].Key)
	}
	l := n.list(t, "prefix=l&limit=10000")
	if len(l.KVs) != total+3 || string(l.KVs[0].Key) != "l" || string(l.KVs[1].Key) != "l." || string(l.KVs[total+2].Key) != "l0" {
		t.Fatalf("prefix l: %d keys", len(l.KVs))
	}
	if v := l.KVs[0].Value; v == nil || len(*v) != 0 {
		t.Fatalf("empty value listed as %v, want \"\"", v)
	}
	// Nothing matches: an empty array, not null.
	r := n.do(t, http.MethodGet, "/v1/kv/?prefix=nothing", nil)
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"kvs":[]`)) || bytes.Contains(r.body, []byte("next_cursor")) {
		t.Fatalf("empty listing = %d %s", r.status, r.body)
	}
	// HEAD answers the same without a body.
	if r := n.do(t, http.MethodHead, "/v1/kv/?prefix=l/", nil); r.status != 200 || len(r.body) != 0 {
		t.Fatalf("HEAD listing = %d with %d body bytes", r.status, len(r.body))
	}
	// A client can start after any key under the prefix: the cursor is the
	// key in unpadded URL-safe base64, the encoding of next_cursor.
	if l := n.list(t, "prefix=l/&limit=2&cursor="+base64.RawURLEncoding.EncodeToString([]byte("l/0010"))); len(l.KVs) != 2 || string(l.KVs[0].Key) != "l/0011" {
		t.Fatalf("listing after l/0010 starts at %q", l.KVs[0].Key)
	}
	if first := n.list(t, "prefix=l/&limit=3"); first.NextCursor != base64.RawURLEncoding.EncodeToString(first.KVs[2].Key) {
		t.Fatalf("next_cursor %q is not the last key %q in unpadded URL-safe base64", first.NextCursor, first.KVs[2].Key)
	}
	// A bad cursor is refused without being echoed back: it can be as long
	// as the request line.
	huge := strings.Repeat("z", 10<<10)
	if r := n.do(t, http.MethodGet, "/v1/kv/?prefix=l/&cursor="+huge, nil); r.status != 400 || len(r.body) > 512 {
		t.Fatalf("a 10 KB cursor = %d with a %d-byte body, want a short 400", r.status, len(r.body))
	}
	// A page reads the state at its own revision: a key written between
	// pages shows up on the later page.
	first := n.list(t, "prefix=l/&limit=1000")
	n.putV1(t, "l/2499", "vl/2499", nil)
	second := n.list(t, "prefix=l/&limit=2000&cursor="+first.NextCursor)
	last := second.KVs[len(second.KVs)-1]
	if second.Revision <= first.Revision || last.Version != 2 || last.ModRevision != second.Revision {
		t.Fatalf("second page at %d (first %d) shows %q at version %d", second.Revision, first.Revision, last.Key, last.Version)
	}
}

// TestV1ListEncoding lists the same keys in both encodings: encoding=text
// answers the documented document with keys and values as they are,
// base64 (asked for or by default) carries binary keys and values exactly,
// and text refuses a page holding a key or value that is not UTF-8 rather
// than change it.
func TestV1ListEncoding(t *testing.T) {
	n := startSingleNode(t)
	color := n.putV1(t, "config/color", "blue", nil)
	empty := n.putV1(t, "config/empty", "", nil)
	odd := n.putV1(t, "config/é", "a && b <c>\n\x00\"", nil)
	n.putV1(t, "bin/value", "\xff\xfe", nil)
	n.putV1(t, "bin/\xff", "text", nil)

	r := n.do(t, http.MethodGet, "/v1/kv/?prefix=config/&encoding=text", nil)
	if r.status != 200 || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("text listing = %d %v %s", r.status, r.header, r.body)
	}
	want := fmt.Sprintf(`{"revision":%d,"kvs":[`+
		`{"key":"config/color","value":"blue","create_revision":%d,"mod_revision":%[2]d,"version":1},`+
		`{"key":"config/empty","value":"","create_revision":%d,"mod_revision":%[3]d,"version":1},`+
		`{"key":"config/é","value":"a && b <c>\n\u0000\"","create_revision":%d,"mod_revision":%[4]d,"version":1}`+
		`],"more":false}`+"\n", headerUint(t, r, "X-Raftkv-Revision"), color.Revision, empty.Revision, odd.Revision)
	if string(r.body) != want {
		t.Fatalf("text listing:\n%s\nwant:\n%s", r.body, want)
	}
	var text struct{ KVs []struct{ Key, Value string } }
	if err := json.Unmarshal(r.body, &text); err != nil || len(text.KVs) != 3 ||
		text.KVs[2].Key != "config/é" || text.KVs[2].Value != "a && b <c>\n\x00\"" {
		t.Fatalf("text listing decodes to %+v, %v", text, err)
	}
	keys := n.do(t, http.MethodGet, "/v1/kv/?prefix=config/c&keys_only=true&encoding=text", nil)
	if want := `"kvs":[{"key":"config/color","create_revision"`; keys.status != 200 || !strings.Contains(string(keys.body), want) {
		t.Fatalf("text keys_only listing = %d %s, want %s", keys.status, keys.body, want)
	}

	// base64 is the default, and carries any byte.
	plain := n.do(t, http.MethodGet, "/v1/kv/?prefix=bin/", nil)
	explicit := n.do(t, http.MethodGet, "/v1/kv/?prefix=bin/&encoding=base64", nil)
	if plain.status != 200 || !bytes.Equal(plain.body, explicit.body) {
		t.Fatalf("default listing %d %s, encoding=base64 %d %s", plain.status, plain.body, explicit.status, explicit.body)
	}
	l := n.list(t, "prefix=bin/&encoding=base64")
	if len(l.KVs) != 2 || string(l.KVs[0].Key) != "bin/value" || string(*l.KVs[0].Value) != "\xff\xfe" ||
		string(l.KVs[1].Key) != "bin/\xff" || string(*l.KVs[1].Value) != "text" {
		t.Fatalf("base64 listing of binary keys and values: %+v", l.KVs)
	}

	// Text refuses what it cannot carry, naming the key; a value it does
	// not send cannot fail it.
	keys = n.do(t, http.MethodGet, "/v1/kv/?prefix=bin/v&keys_only=true&encoding=text", nil)
	if want := `"kvs":[{"key":"bin/value","create_revision"`; keys.status != 200 || !strings.Contains(string(keys.body), want) {
		t.Fatalf("text keys_only listing of a binary value = %d %s, want %s", keys.status, keys.body, want)
	}
	for _, c := range []struct{ query, says string }{
		{"prefix=bin/v&encoding=text", `the value of key "bin/value"`},
		{"prefix=bin/&keys_only=true&encoding=text", `key "bin/\xff"`},
		{"encoding=text&limit=10000", `the value of key "bin/value"`}, // the first in byte order
	} {
		before := n.srv.KV().Store().Revision()
		r := n.do(t, http.MethodGet, "/v1/kv/?"+c.query, nil)
		var e struct{ Error string }
		if r.status != 400 || errorCode(t, r) != "not_utf8" || json.Unmarshal(r.body, &e) != nil ||
			!strings.Contains(e.Error, c.says) || !strings.Contains(e.Error, "encoding=base64") {
			t.Fatalf("?%s = %d %s, want 400 not_utf8 that says %s", c.query, r.status, r.body, c.says)
		}
		if after := n.srv.KV().Store().Revision(); after != before {
			t.Fatalf("a refused listing moved the store from %d to %d", before, after)
		}
	}
}

// TestV1DeleteRange deletes by prefix in one revision.
func TestV1DeleteRange(t *testing.T) {
	n := startSingleNode(t)
	for _, k := range []string{"r/a", "r/b", "r/c", "r", "rr", "s"} {
		n.putV1(t, k, "v", nil)
	}
	deleteRange := func(query string) deleteResponse {
		t.Helper()
		r := n.do(t, http.MethodDelete, "/v1/kv/?"+query, nil)
		if r.status != 200 {
			t.Fatalf("DELETE ?%s = %d %s", query, r.status, r.body)
		}
		var d deleteResponse
		decodeStrict(t, r, &d)
		if got := headerUint(t, r, "X-Raftkv-Revision"); got != d.Revision {
			t.Fatalf("X-Raftkv-Revision %d, body %d", got, d.Revision)
		}
		return d
	}
	before := n.srv.KV().Store().Revision()
	d := deleteRange("prefix=r/")
	if d.Deleted != 3 || d.Revision <= before {
		t.Fatalf("range delete = %+v (store was at %d)", d, before)
	}
	if l := n.list(t, "prefix=r"); len(l.KVs) != 2 || string(l.KVs[0].Key) != "r" || string(l.KVs[1].Key) != "rr" {
		t.Fatalf("after the range delete: %+v", l.KVs)
	}
	// Every deleted key went in one revision.
	if l := n.list(t, ""); l.Revision != d.Revision {
		t.Fatalf("store revision %d after a range delete at %d", l.Revision, d.Revision)
	}
	// Nothing matched: nothing changes, the revision stays.
	if again := deleteRange("prefix=r/"); again.Deleted != 0 || again.Revision != d.Revision {
		t.Fatalf("empty range delete = %+v, want 0 at %d", again, d.Revision)
	}
	// An empty prefix deletes everything, on purpose.
	if all := deleteRange("prefix="); all.Deleted != 3 || n.srv.KV().Store().Len() != 0 {
		t.Fatalf("delete all = %+v, %d keys left", all, n.srv.KV().Store().Len())
	}
}
