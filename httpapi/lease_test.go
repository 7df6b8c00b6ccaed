package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/raftkv/raftkv/httpapi"
	"github.com/raftkv/raftkv/internal/testcluster"
	"github.com/raftkv/raftkv/kvstore"
	"github.com/raftkv/raftkv/wire"
)

func (n *node) grant(t *testing.T, body string) wire.Lease {
	t.Helper()
	r := n.do(t, http.MethodPost, "/v1/leases", []byte(body))
	expect(t, "grant "+body, r, http.StatusOK, "")
	var l wire.Lease
	decodeStrict(t, r, &l)
	return l
}

// putLease puts key attached to lease id.
func (n *node) putLease(t *testing.T, key, value string, id uint64) putResponse {
	t.Helper()
	r := n.do(t, http.MethodPut, kvPath(key)+"?lease="+strconv.FormatUint(id, 10), []byte(value))
	expect(t, "PUT "+key+" on a lease", r, http.StatusOK, "")
	var p putResponse
	decodeStrict(t, r, &p)
	return p
}

func leasePath(id uint64, rest string) string {
	return "/v1/leases/" + strconv.FormatUint(id, 10) + rest
}

// TestLeaseLifecycle grants a lease through a follower, attaches keys to
// it, reads it, renews it and revokes it: the revoke deletes exactly its
// keys at one revision on every member, and a watcher sees the deletes.
func TestLeaseLifecycle(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	leader := c.WaitLeader()
	f := clusterNode(t, c, leader%3+1)

	// Too short a TTL is raised to one and a half election timeouts.
	minTTL := c.Server(leader).KV().MinLeaseTTL().Milliseconds()
	if l := f.grant(t, `{"ttl_ms": 1}`); l.TTLMs != minTTL || minTTL == 0 {
		t.Fatalf("a 1 ms lease got %d ms, want the minimum %d", l.TTLMs, minTTL)
	}
	l := f.grant(t, `{"ttl_ms": 5000}`)
	if l.TTLMs != 5000 || l.ID == 0 {
		t.Fatalf("grant = %+v", l)
	}
	f.putLease(t, "svc/a", "a", l.ID)
	f.putLease(t, "svc/b", "b", l.ID)
	f.putV1(t, "svc/kept", "c", nil)
	expect(t, "put to a lease that does not exist", f.do(t, http.MethodPut, "/v1/kv/svc/x?lease=999999", []byte("x")), http.StatusNotFound, "lease_not_found")
	expect(t, "put with a bad lease id", f.do(t, http.MethodPut, "/v1/kv/svc/x?lease=abc", []byte("x")), http.StatusBadRequest, "invalid_lease_id")

	r := f.do(t, http.MethodGet, "/v1/kv/svc/a", nil)
	if got := r.header.Get("X-Raftkv-Lease"); got != strconv.FormatUint(l.ID, 10) {
		t.Fatalf("X-Raftkv-Lease = %q, want %d", got, l.ID)
	}
	if got := f.do(t, http.MethodGet, "/v1/kv/svc/kept", nil).header.Get("X-Raftkv-Lease"); got != "" {
		t.Fatalf("a key without a lease has X-Raftkv-Lease %q", got)
	}

	// The follower forwards what the leader's clock answers.
	r = f.do(t, http.MethodGet, leasePath(l.ID, "?encoding=text"), nil)
	expect(t, "GET the lease", r, http.StatusOK, "")
	var st struct {
		wire.LeaseStatus
		Keys []string `json:"keys"`
	}
	decodeStrict(t, r, &st)
	if st.ID != l.ID || st.TTLMs != 5000 || st.RemainingMs <= 0 || st.RemainingMs > 5000 || fmt.Sprint(st.Keys) != "[svc/a svc/b]" {
		t.Fatalf("lease status = %+v", st)
	}
	r = f.do(t, http.MethodGet, leasePath(l.ID, ""), nil)
	var b64 wire.LeaseStatus
	decodeStrict(t, r, &b64)
	if fmt.Sprintf("%s", b64.Keys) != "[svc/a svc/b]" {
		t.Fatalf("lease status in base64 = %+v", b64)
	}
	r = f.do(t, http.MethodPost, leasePath(l.ID, "/keepalive"), nil)
	expect(t, "keepalive", r, http.StatusOK, "")
	var renewed wire.Lease
	decodeStrict(t, r, &renewed)
	if renewed != l {
		t.Fatalf("keepalive = %+v, want %+v", renewed, l)
	}
	r = f.do(t, http.MethodGet, "/v1/leases", nil)
	var list wire.LeaseList
	decodeStrict(t, r, &list)
	if !slices.Contains(list.Leases, l) {
		t.Fatalf("GET /v1/leases = %+v, without %+v", list, l)
	}

	w, err := c.Server(leader).KV().Watch([]byte("svc/"), true, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r = f.do(t, http.MethodDelete, leasePath(l.ID, ""), nil)
	expect(t, "revoke", r, http.StatusOK, "")
	var revoked wire.LeaseRevoked
	decodeStrict(t, r, &revoked)
	if revoked.Deleted != 2 || revoked.Revision == 0 {
		t.Fatalf("revoke = %+v, want 2 keys deleted", revoked)
	}
	checkRevoked(t, c, l.ID, revoked.Revision, []string{"svc/a", "svc/b"}, "svc/kept")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch, err := w.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Revision != revoked.Revision || len(ch.Events) != 2 || string(ch.Events[0].Key) != "svc/a" || ch.Events[1].Type != kvstore.EventDelete {
		t.Fatalf("the watcher saw %+v, want both deletes at %d", ch, revoked.Revision)
	}

	for what, r := range map[string]response{
		"revoke again":                 f.do(t, http.MethodDelete, leasePath(l.ID, ""), nil),
		"keepalive of a revoked":       f.do(t, http.MethodPost, leasePath(l.ID, "/keepalive"), nil),
		"GET a revoked lease":          f.do(t, http.MethodGet, leasePath(l.ID, ""), nil),
		"revoke a lease never granted": f.do(t, http.MethodDelete, leasePath(424242, ""), nil),
	} {
		expect(t, what, r, http.StatusNotFound, "lease_not_found")
	}
	f.grant(t, `{"ttl_ms": 5000, "id": 77}`)
	expect(t, "grant of a taken id", f.do(t, http.MethodPost, "/v1/leases", []byte(`{"ttl_ms": 5000, "id": 77}`)), http.StatusConflict, "lease_exists")
	for body, code := range map[string]string{
		`{"ttl_ms": 0}`: "invalid_lease",
		`{}`:            "invalid_lease",
		`{"ttl_ms": 1000, "id": 9007199254740992}`: "invalid_lease",
		`{"ttl_ms": 1000, "idd": 3}`:               "invalid_lease",
		`{"ttl_ms": "1000"}`:                       "invalid_lease",
	} {
		expect(t, "grant "+body, f.do(t, http.MethodPost, "/v1/leases", []byte(body)), http.StatusBadRequest, code)
	}
	expect(t, "lease id 0", f.do(t, http.MethodGet, "/v1/leases/0", nil), http.StatusBadRequest, "invalid_lease_id")
	expect(t, "PUT a lease", f.do(t, http.MethodPut, "/v1/leases/77", nil), http.StatusMethodNotAllowed, "method_not_allowed")
}

// checkRevoked waits until every member has applied revision, then checks
// that each has deleted exactly the keys gone at that revision, kept the
// key kept, and forgotten the lease.
func checkRevoked(t *testing.T, c *testcluster.Cluster, id, revision uint64, gone []string, kept string) {
	t.Helper()
	c.WaitApplied(revision)
	for _, m := range c.Running() {
		store := c.Server(m).KV().Store()
		for _, k := range gone {
			if it, _, ok := store.Get([]byte(k)); ok {
				t.Fatalf("member %d still holds %s (%+v)", m, k, it)
			}
		}
		if _, _, ok := store.Get([]byte(kept)); !ok {
			t.Fatalf("member %d lost %s, which was on no lease", m, kept)
		}
		if _, _, ok := store.Lease(id); ok {
			t.Fatalf("member %d still holds lease %d", m, id)
		}
	}
}

// TestLeaseExpiry lets one lease expire while keeping another alive: the
// leader revokes the expired one through raft, so every member deletes its
// keys at the same revision and watchers see it, while the renewed lease
// keeps its key.
func TestLeaseExpiry(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	leader := c.WaitLeader()
	f := clusterNode(t, c, leader%3+1)
	short := f.grant(t, `{"ttl_ms": 1}`) // the minimum
	kept := f.grant(t, `{"ttl_ms": 3000}`)
	f.putLease(t, "svc/short", "a", short.ID)
	f.putLease(t, "svc/kept", "b", kept.ID)
	w, err := c.Server(leader%3+1).KV().Watch([]byte("svc/short"), false, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	next := make(chan kvstore.Change, 1)
	go func() {
		ch, _ := w.Next(ctx) // ends with the context at the latest
		next <- ch
	}()
	defer func() { cancel(); <-next }()
	var ch kvstore.Change
	stop := time.After(time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for ch.Revision == 0 {
		select {
		case ch = <-next:
			next <- ch // for the deferred wait
		case <-tick.C:
			expect(t, "keepalive", f.do(t, http.MethodPost, leasePath(kept.ID, "/keepalive"), nil), http.StatusOK, "")
		case <-stop:
			t.Fatal("the short lease did not expire in a minute")
		}
	}
	if len(ch.Events) != 1 || ch.Events[0].Type != kvstore.EventDelete {
		t.Fatalf("expiry event %+v, want one delete", ch)
	}
	checkRevoked(t, c, short.ID, ch.Revision, []string{"svc/short"}, "svc/kept")
}

// TestLeaseSurvivesLeaderChangeAndRestart renews a lease, then stops the
// leader: the new leader gives the lease its whole TTL again, so the key is
// still there for at least a TTL after the last renewal, and goes once
// nobody renews it. A member restarted from a snapshot holds the lease and
// its keys.
func TestLeaseSurvivesLeaderChangeAndRestart(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3, SnapshotCount: 5})
	leader := c.WaitLeader()
	other := leader%3 + 1
	f := clusterNode(t, c, other)
	const ttl = 5 * time.Second
	l := f.grant(t, fmt.Sprintf(`{"ttl_ms": %d}`, ttl.Milliseconds()))
	put := f.putLease(t, "svc/a", "a", l.ID)
	for i := range 10 { // past the snapshot count
		f.putV1(t, fmt.Sprintf("filler/%d", i), "x", nil)
	}
	renewed := time.Now()
	expect(t, "keepalive", f.do(t, http.MethodPost, leasePath(l.ID, "/keepalive"), nil), http.StatusOK, "")
	if err := c.Stop(leader); err != nil {
		t.Fatal(err)
	}
	c.WaitLeader()
	asked := time.Now()
	r := f.do(t, http.MethodGet, "/v1/kv/svc/a", nil)
	if asked.Sub(renewed) < ttl {
		// The lease was promised until renewed+ttl: it must be there.
		expect(t, "the key within a TTL of its renewal", r, http.StatusOK, "")
	} else {
		t.Logf("the leader change took %v, longer than the TTL: nothing to check about early expiry", asked.Sub(renewed))
	}

	c.Restart(leader)
	c.WaitApplied(put.Revision, leader)
	if c.Node(leader).Status().Snapshot == 0 {
		t.Fatal("the restarted member has no snapshot: the test proves nothing about snapshots")
	}
	store := c.Server(leader).KV().Store()
	restarted, _, ok := store.Lease(l.ID)
	if _, _, held := store.Get([]byte("svc/a")); held && (!ok || !slices.Equal(restarted.Keys, []string{"svc/a"})) {
		t.Fatalf("the restarted member holds svc/a, and lease %d as %+v (found %v), want it with svc/a", l.ID, restarted, ok)
	} else if !held {
		t.Logf("the lease expired before the restarted member was checked")
	}
	c.WaitFor("the lease's key to expire on every member", func() error {
		for _, m := range c.Running() {
			if _, _, ok := c.Server(m).KV().Store().Get([]byte("svc/a")); ok {
				return fmt.Errorf("member %d still holds svc/a", m)
			}
		}
		return nil
	})
}

// TestKeepAliveStream holds a lease over one connection to a follower:
// each line sent renews it and is answered by a line, and once the lease is
// gone the stream ends with an error line.
func TestKeepAliveStream(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	leader := c.WaitLeader()
	f := clusterNode(t, c, leader%3+1)
	l := f.grant(t, `{"ttl_ms": 5000}`)

	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequest(http.MethodPost, f.url+leasePath(l.ID, "/keepalive/stream"), pr)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	send := func() {
		if _, err := pw.Write([]byte("\n")); err != nil {
			t.Fatal(err)
		}
	}
	// The server answers before it reads a line: Do returns with the
	// request body still open.
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("stream = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := bufio.NewScanner(resp.Body)
	for i := range 3 {
		send()
		if !lines.Scan() {
			t.Fatalf("renewal %d: the stream ended: %v", i, lines.Err())
		}
		var got wire.Lease
		if err := json.Unmarshal(lines.Bytes(), &got); err != nil || got != l {
			t.Fatalf("renewal %d: %s (%v), want %+v", i, lines.Bytes(), err, l)
		}
	}
	expect(t, "revoke", f.do(t, http.MethodDelete, leasePath(l.ID, ""), nil), http.StatusOK, "")
	send()
	if !lines.Scan() {
		t.Fatalf("no answer after the revoke: %v", lines.Err())
	}
	var e wire.Error
	if err := json.Unmarshal(lines.Bytes(), &e); err != nil || e.Code != "lease_not_found" {
		t.Fatalf("after the revoke: %s, want a lease_not_found line", lines.Bytes())
	}
	if lines.Scan() {
		t.Fatalf("the stream went on after its error: %s", lines.Bytes())
	}
}

// TestLeaseRevokeNeedsItsKeys: with access control on, any user may grant
// and renew a lease, but revoking one deletes its keys, so it needs the
// right to write every one of them; and a lease's keys are shown only to
// those who may read them.
func TestLeaseRevokeNeedsItsKeys(t *testing.T) {
	store := authStoreWith(t, map[string]any{
		"app":   map[string]any{"read": []string{"app/"}, "write": []string{"app/"}},
		"other": map[string]any{"read": []string{"other/"}, "write": []string{"other/"}},
	})
	n := startSingleNodeWith(t, nodeOptions{limits: func(c *httpapi.Config) { c.Auth = store }})
	expect(t, "a grant without credentials", n.do(t, http.MethodPost, "/v1/leases", []byte(`{"ttl_ms": 5000}`)), http.StatusUnauthorized, "auth_required")
	r := n.doHeader(t, http.MethodPost, "/v1/leases", as("app"), []byte(`{"ttl_ms": 5000}`))
	expect(t, "app's grant", r, http.StatusOK, "")
	var l wire.Lease
	decodeStrict(t, r, &l)
	expect(t, "app puts its key on the lease", n.doHeader(t, http.MethodPut, "/v1/kv/app/svc?lease="+strconv.FormatUint(l.ID, 10), as("app"), []byte("x")), http.StatusOK, "")
	expect(t, "other renews app's lease", n.doHeader(t, http.MethodPost, leasePath(l.ID, "/keepalive"), as("other"), nil), http.StatusOK, "")

	r = n.doHeader(t, http.MethodGet, leasePath(l.ID, "?encoding=text"), as("other"), nil)
	expect(t, "other reads the lease", r, http.StatusOK, "")
	var st struct {
		wire.LeaseStatus
		Keys []string `json:"keys"`
	}
	decodeStrict(t, r, &st)
	if len(st.Keys) != 0 {
		t.Fatalf("other sees the keys %q of a lease, which it may not read", st.Keys)
	}
	expect(t, "other revokes app's lease", n.doHeader(t, http.MethodDelete, leasePath(l.ID, ""), as("other"), nil), http.StatusForbidden, "permission_denied")
	if _, _, ok := n.srv.KV().Store().Get([]byte("app/svc")); !ok {
		t.Fatal("a refused revoke deleted the key")
	}
	expect(t, "app revokes its lease", n.doHeader(t, http.MethodDelete, leasePath(l.ID, ""), as("app"), nil), http.StatusOK, "")
}
