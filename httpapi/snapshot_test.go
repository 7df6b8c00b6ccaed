package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/backup"
	"github.com/raftkv/raftkv/httpapi"
	"github.com/raftkv/raftkv/kvstore"
	"github.com/raftkv/raftkv/raftnode"
)

// TestSnapshotBackup takes a backup of a node with a few writes and checks
// that it holds exactly the store: every key with its revisions, the
// revision of the last write acknowledged before it, and the member table.
func TestSnapshotBackup(t *testing.T) {
	n := startSingleNode(t)
	var last uint64
	for i := range 20 {
		last = n.putV1(t, fmt.Sprintf("k%02d", i%7), fmt.Sprintf("v%d", i), nil).Revision
	}
	r := n.do(t, http.MethodGet, "/v1/snapshot", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/snapshot: %d %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	if cl := r.header.Get("Content-Length"); cl != strconv.Itoa(len(r.body)) {
		t.Fatalf("Content-Length %s for %d bytes", cl, len(r.body))
	}
	var got []kvstore.KeyValue
	info, err := backup.Verify(bytes.NewReader(r.body), func(kv kvstore.KeyValue) error {
		got = append(got, kv)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	store := n.srv.KV().Store()
	want, _, _ := store.List(nil, nil, 100)
	hash, _ := store.Hash()
	if info.Revision != last || r.header.Get("X-Raftkv-Revision") != strconv.FormatUint(last, 10) || len(got) != len(want) || info.StateHash != hash {
		t.Fatalf("backup at revision %d (header %s) with %d keys, state hash %s; the store: revision %d, %d keys, hash %s",
			info.Revision, r.header.Get("X-Raftkv-Revision"), len(got), info.StateHash, last, len(want), hash)
	}
	node := n.srv.Node()
	if info.MemberID != 1 || info.ClusterID != raftnode.FormatID(node.ClusterID()) || len(info.Members) != 1 ||
		info.Members[0].ID != 1 || len(info.Members[0].PeerURLs) != 1 {
		t.Fatalf("backup header %+v", info.Header)
	}

	if r := n.do(t, http.MethodGet, "/v1/snapshot?consistency=serializable", nil); r.status != http.StatusOK {
		t.Fatalf("a serializable backup: %d %s", r.status, r.body)
	}
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodGet, "/v1/snapshot?consistency=stale", http.StatusBadRequest, "invalid_consistency"},
		{http.MethodGet, "/v1/snapshot?revision=3", http.StatusBadRequest, "invalid_parameter"},
		{http.MethodPost, "/v1/snapshot", http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodGet, "/v1/snapshot/x", http.StatusNotFound, "not_found"},
	} {
		r := n.do(t, c.method, c.path, nil)
		var e struct{ Code string }
		json.Unmarshal(r.body, &e)
		if r.status != c.status || e.Code != c.code {
			t.Fatalf("%s %s: %d %s, want %d %s", c.method, c.path, r.status, r.body, c.status, c.code)
		}
	}
}

// TestSnapshotNeedsAdmin: a backup holds every key, so with access control
// on only an admin may take one, even a user who may read every key.
func TestSnapshotNeedsAdmin(t *testing.T) {
	store := authStoreWith(t, map[string]any{
		"root":   map[string]any{"admin": true},
		"reader": map[string]any{"read": []string{""}},
	})
	n := startSingleNodeWith(t, nodeOptions{limits: func(c *httpapi.Config) { c.Auth = store }})
	for _, c := range []struct {
		user   string
		status int
	}{{"", http.StatusUnauthorized}, {"reader", http.StatusForbidden}, {"root", http.StatusOK}} {
		r := n.doHeader(t, http.MethodGet, "/v1/snapshot", as(c.user), nil)
		if r.status != c.status {
			t.Fatalf("GET /v1/snapshot as %q: %d %s, want %d", c.user, r.status, r.body, c.status)
		}
	}
}

// TestSnapshotDoesNotStallWrites holds a backup open without reading it,
// larger than the socket buffers, while writes go on: they are applied and
// answered, and the backup, read afterwards, holds the store as it was when
// the backup began.
func TestSnapshotDoesNotStallWrites(t *testing.T) {
	n := startSingleNodeWith(t, nodeOptions{limits: func(c *httpapi.Config) { c.MaxRequestBytes = 64 << 10 }})
	old := strings.Repeat("a", 64<<10)
	var before uint64
	for i := range 100 {
		before = n.putV1(t, fmt.Sprintf("k%03d", i), old, nil).Revision
	}
	resp, err := n.http.Get(n.url + "/v1/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/snapshot: %d", resp.StatusCode)
	}
	head := make([]byte, 1024)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	// The server is now blocked writing the rest.
	for i := range 50 {
		n.putV1(t, fmt.Sprintf("k%03d", i), "b", nil)
	}
	n.do(t, http.MethodDelete, "/v1/kv/?prefix=k09", nil)
	values := 0
	info, err := backup.Verify(io.MultiReader(bytes.NewReader(head), resp.Body), func(kv kvstore.KeyValue) error {
		if string(kv.Value) != old {
			return fmt.Errorf("key %s holds a value written after the backup began", kv.Key)
		}
		values++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if info.Revision != before || values != 100 {
		t.Fatalf("backup at revision %d with %d keys; it began at revision %d with 100", info.Revision, values, before)
	}
}
