package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/internal/testcluster"
)

// testTimeout bounds every client call of the tests; calls return as soon
// as they are done.
const testTimeout = 15 * time.Second

// startCluster starts a three-member cluster and waits for its leader.
func startCluster(t *testing.T, cfg testcluster.Config) (*testcluster.Cluster, uint64) {
	t.Helper()
	cfg.Size = 3
	c := testcluster.New(t, cfg)
	return c, c.WaitLeader()
}

// urls returns the client URLs of members ids, in that order.
func urls(c *testcluster.Cluster, ids ...uint64) []string {
	var u []string
	for _, id := range ids {
		u = append(u, c.ClientURL(id))
	}
	return u
}

// newClient returns a client of endpoints that is closed before the cluster
// stops (cleanups run last-registered first).
func newClient(t *testing.T, endpoints []string, opts ...client.Option) *client.Client {
	t.Helper()
	cl, err := client.New(endpoints, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// closedPort returns the URL of a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

func mustPut(t *testing.T, cl *client.Client, key, value string) client.Result {
	t.Helper()
	res, err := cl.Put(testContext(t), []byte(key), []byte(value), client.Condition{})
	if err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	return res
}

// wantPrecondition asserts that err is a 412 naming modRevision.
func wantPrecondition(t *testing.T, err error, modRevision uint64) {
	t.Helper()
	var pf *client.PreconditionFailedError
	if !errors.As(err, &pf) {
		t.Fatalf("err = %v, want a *PreconditionFailedError", err)
	}
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusPreconditionFailed || apiErr.Code != "precondition_failed" {
		t.Fatalf("err = %v (%#v), want an APIError 412 precondition_failed", err, apiErr)
	}
	if pf.ModRevision != modRevision {
		t.Fatalf("precondition failed with mod revision %d, want %d", pf.ModRevision, modRevision)
	}
}

func TestKV(t *testing.T) {
	c, leader := startCluster(t, testcluster.Config{})
	// Start with a follower, so that writes are forwarded.
	ids := []uint64{leader%3 + 1, leader, (leader+1)%3 + 1}
	cl := newClient(t, urls(c, ids...))

	t.Run("put and get", func(t *testing.T) {
		ctx := testContext(t)
		r1 := mustPut(t, cl, "pg/k", "v1")
		if !r1.Created || r1.Version != 1 || r1.CreateRevision != r1.Revision || r1.ModRevision != r1.Revision || r1.Revision == 0 {
			t.Fatalf("first put = %+v", r1)
		}
		r2 := mustPut(t, cl, "pg/k", "v2")
		if r2.Created || r2.Version != 2 || r2.CreateRevision != r1.Revision || r2.ModRevision != r2.Revision || r2.Revision <= r1.Revision {
			t.Fatalf("second put = %+v after %+v", r2, r1)
		}
		for _, cons := range []client.Consistency{"", client.Linearizable, client.Serializable} {
			if cons == client.Serializable {
				c.WaitApplied(r2.Revision)
			}
			kv, err := cl.Get(ctx, []byte("pg/k"), cons)
			if err != nil {
				t.Fatal(err)
			}
			if string(kv.Key) != "pg/k" || string(kv.Value) != "v2" || kv.CreateRevision != r1.Revision ||
				kv.ModRevision != r2.Revision || kv.Version != 2 || kv.Revision < r2.Revision {
				t.Fatalf("get (%q) = %+v after puts %+v, %+v", cons, kv, r1, r2)
			}
		}
		r3 := mustPut(t, cl, "pg/empty", "")
		kv, err := cl.Get(ctx, []byte("pg/empty"), "")
		if err != nil || len(kv.Value) != 0 || kv.ModRevision != r3.Revision {
			t.Fatalf("get of an empty value = %+v, %v", kv, err)
		}
	})

	t.Run("not found", func(t *testing.T) {
		ctx := testContext(t)
		_, err := cl.Get(ctx, []byte("nf/missing"), "")
		var apiErr *client.APIError
		if !errors.Is(err, client.ErrNotFound) || !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound || apiErr.Code != "key_not_found" {
			t.Fatalf("get of a missing key: %v", err)
		}
		if _, err := cl.Delete(ctx, []byte("nf/missing"), client.Condition{}); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("delete of a missing key: %v", err)
		}
		if _, err := cl.Get(ctx, nil, ""); err == nil {
			t.Fatal("get of an empty key: no error")
		}
	})

	t.Run("conditional writes", func(t *testing.T) {
		ctx := testContext(t)
		key := []byte("cond/k")
		r1, err := cl.Put(ctx, key, []byte("1"), client.IfNotExists())
		if err != nil || !r1.Created {
			t.Fatalf("create-only put of a new key = %+v, %v", r1, err)
		}
		_, err = cl.Put(ctx, key, []byte("2"), client.IfNotExists())
		wantPrecondition(t, err, r1.Revision)
		_, err = cl.Put(ctx, key, []byte("2"), client.IfModRevision(r1.Revision+1000))
		wantPrecondition(t, err, r1.Revision)
		r2, err := cl.Put(ctx, key, []byte("2"), client.IfModRevision(r1.Revision))
		if err != nil || r2.Version != 2 {
			t.Fatalf("compare-and-swap at the current revision = %+v, %v", r2, err)
		}
		_, err = cl.Put(ctx, key, []byte("3"), client.IfModRevision(r1.Revision))
		wantPrecondition(t, err, r2.Revision)
		r3, err := cl.Put(ctx, key, []byte("3"), client.IfExists())
		if err != nil || r3.Version != 3 {
			t.Fatalf("put if exists = %+v, %v", r3, err)
		}
		// A failed condition changed nothing.
		if kv, err := cl.Get(ctx, key, ""); err != nil || string(kv.Value) != "3" || kv.ModRevision != r3.Revision {
			t.Fatalf("get after the conditional writes = %+v, %v", kv, err)
		}

		absent := []byte("cond/absent")
		_, err = cl.Put(ctx, absent, []byte("x"), client.IfExists())
		wantPrecondition(t, err, 0)
		_, err = cl.Put(ctx, absent, []byte("x"), client.IfModRevision(r1.Revision))
		wantPrecondition(t, err, 0)
		_, err = cl.Delete(ctx, absent, client.IfModRevision(r1.Revision))
		wantPrecondition(t, err, 0)
		// IfModRevision(0) is create-only, as in etcd.
		if r, err := cl.Put(ctx, absent, []byte("x"), client.IfModRevision(0)); err != nil || !r.Created {
			t.Fatalf("put if mod revision 0 = %+v, %v", r, err)
		}

		_, err = cl.Delete(ctx, key, client.IfModRevision(r2.Revision))
		wantPrecondition(t, err, r3.Revision)
		d, err := cl.Delete(ctx, key, client.IfModRevision(r3.Revision))
		if err != nil || d.Deleted != 1 || d.Revision <= r3.Revision {
			t.Fatalf("conditional delete = %+v, %v", d, err)
		}
		if _, err := cl.Get(ctx, key, ""); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
	})

	t.Run("binary-safe keys", func(t *testing.T) {
		ctx := testContext(t)
		keys := []string{
			"a b", "100%", "what?", "#frag", "?x=1&y=2", "+plus", "a/b", "a//b", "/lead", "trail/", "/", ".", "..",
			"a/../b", "a%2Fb", "\x00\xff\xfe", "é", "new\nline", "v1", "kv/", "metrics",
		}
		for _, k := range keys {
			mustPut(t, cl, k, "value of "+k)
		}
		for _, k := range keys {
			kv, err := cl.Get(ctx, []byte(k), "")
			if err != nil || string(kv.Value) != "value of "+k {
				t.Errorf("get %q = %q, %v", k, kv.Value, err)
			}
		}
		// Every key is listed as itself, once.
		listed := map[string]string{}
		for kv, err := range cl.ListAll(ctx, nil, client.ListOptions{}) {
			if err != nil {
				t.Fatal(err)
			}
			if _, dup := listed[string(kv.Key)]; dup {
				t.Errorf("key %q listed twice", kv.Key)
			}
			listed[string(kv.Key)] = string(kv.Value)
		}
		for _, k := range keys {
			if listed[k] != "value of "+k {
				t.Errorf("listing: key %q = %q", k, listed[k])
			}
		}
		// A prefix with bytes that need escaping.
		page, err := cl.List(ctx, []byte("\x00\xff"), client.ListOptions{})
		if err != nil || len(page.KVs) != 1 || string(page.KVs[0].Key) != "\x00\xff\xfe" {
			t.Fatalf("list of a binary prefix = %+v, %v", page, err)
		}
	})

	t.Run("listing across pages", func(t *testing.T) {
		ctx := testContext(t)
		var want []string
		var last client.Result
		for i := range 23 {
			k := fmt.Sprintf("list/k%02d", i)
			last = mustPut(t, cl, k, "v"+k)
			want = append(want, k)
		}
		mustPut(t, cl, "lisx", "outside the prefix")
		mustPut(t, cl, "list", "outside the prefix too")

		page, err := cl.List(ctx, []byte("list/"), client.ListOptions{Limit: 10})
		if err != nil || len(page.KVs) != 10 || !page.More || page.NextCursor == "" || page.Revision < last.Revision {
			t.Fatalf("first page = %+v, %v", page, err)
		}
		var sizes []int
		var got []string
		for page, err := range cl.Pages(ctx, []byte("list/"), client.ListOptions{Limit: 10}) {
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(page.KVs))
			for _, kv := range page.KVs {
				got = append(got, string(kv.Key))
				if string(kv.Value) != "v"+string(kv.Key) || kv.Version != 1 || kv.CreateRevision != kv.ModRevision {
					t.Errorf("listed %+v", kv)
				}
			}
		}
		if !slices.Equal(sizes, []int{10, 10, 3}) || !slices.Equal(got, want) {
			t.Fatalf("pages of %v with keys %q, want [10 10 3] pages with %q", sizes, got, want)
		}

		got = got[:0]
		for kv, err := range cl.ListAll(ctx, []byte("list/"), client.ListOptions{Limit: 4, KeysOnly: true, Consistency: client.Serializable}) {
			if err != nil {
				t.Fatal(err)
			}
			if kv.Value != nil || kv.Revision == 0 {
				t.Errorf("keys-only listing gave %+v", kv)
			}
			got = append(got, string(kv.Key))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("ListAll = %q, want %q", got, want)
		}

		// Stopping the iteration early stops fetching.
		n := 0
		for _, err := range cl.ListAll(ctx, []byte("list/"), client.ListOptions{Limit: 2}) {
			if err != nil {
				t.Fatal(err)
			}
			if n++; n == 3 {
				break
			}
		}

		_, err = cl.List(ctx, []byte("list/"), client.ListOptions{Limit: 20000})
		var apiErr *client.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || apiErr.Code != "invalid_limit" {
			t.Fatalf("list with limit 20000: %v", err)
		}
	})

	t.Run("range delete", func(t *testing.T) {
		ctx := testContext(t)
		for _, k := range []string{"rd/a", "rd/b", "rd/c/d"} {
			mustPut(t, cl, k, "x")
		}
		outside := mustPut(t, cl, "rdx", "stays")
		d, err := cl.DeleteRange(ctx, []byte("rd/"))
		if err != nil || d.Deleted != 3 || d.Revision <= outside.Revision {
			t.Fatalf("delete range = %+v, %v", d, err)
		}
		page, err := cl.List(ctx, []byte("rd/"), client.ListOptions{})
		if err != nil || len(page.KVs) != 0 || page.More {
			t.Fatalf("list after the range delete = %+v, %v", page, err)
		}
		if kv, err := cl.Get(ctx, []byte("rdx"), ""); err != nil || string(kv.Value) != "stays" {
			t.Fatalf("a key outside the prefix = %+v, %v", kv, err)
		}
		again, err := cl.DeleteRange(ctx, []byte("rd/"))
		if err != nil || again.Deleted != 0 || again.Revision < d.Revision {
			t.Fatalf("delete range of nothing = %+v, %v", again, err)
		}
	})
}

// nextEvent reads one event, failing the test if none comes in time.
func nextEvent(t *testing.T, w *client.Watcher) client.Event {
	t.Helper()
	ev, err := w.Next()
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	return ev
}

// wantEvent is the part of an event a test checks.
type wantEvent struct {
	typ      client.EventType
	key      string
	value    string
	revision uint64
}

func checkEvents(t *testing.T, w *client.Watcher, want []wantEvent) []client.Event {
	t.Helper()
	var got []client.Event
	for i, we := range want {
		ev := nextEvent(t, w)
		got = append(got, ev)
		if ev.Type != we.typ || string(ev.Key) != we.key || string(ev.Value) != we.value || ev.Revision != we.revision {
			t.Fatalf("event %d = {%s %q %q rev %d}, want {%s %q %q rev %d}",
				i, ev.Type, ev.Key, ev.Value, ev.Revision, we.typ, we.key, we.value, we.revision)
		}
	}
	return got
}

func TestWatch(t *testing.T) {
	c, leader := startCluster(t, testcluster.Config{})
	follower := leader%3 + 1
	cl := newClient(t, urls(c, follower, leader))

	t.Run("events in order and resume from a revision", func(t *testing.T) {
		ctx := testContext(t)
		w, err := cl.Watch(ctx, []byte("w/"), client.WatchOptions{Prefix: true})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		ra1 := mustPut(t, cl, "w/a", "1")
		rb := mustPut(t, cl, "w/b", "2")
		mustPut(t, cl, "x/outside", "not watched")
		ra2 := mustPut(t, cl, "w/a", "3")
		da, err := cl.Delete(ctx, []byte("w/a"), client.Condition{})
		if err != nil {
			t.Fatal(err)
		}
		rc1 := mustPut(t, cl, "w/c", "4")
		rc := mustPut(t, cl, "w/c", "5")
		dr, err := cl.DeleteRange(ctx, []byte("w/"))
		if err != nil || dr.Deleted != 2 {
			t.Fatalf("delete range = %+v, %v", dr, err)
		}
		want := []wantEvent{
			{client.EventPut, "w/a", "1", ra1.Revision},
			{client.EventPut, "w/b", "2", rb.Revision},
			{client.EventPut, "w/a", "3", ra2.Revision},
			{client.EventDelete, "w/a", "", da.Revision},
			{client.EventPut, "w/c", "4", rc1.Revision},
			{client.EventPut, "w/c", "5", rc.Revision},
			{client.EventDelete, "w/b", "", dr.Revision},
			{client.EventDelete, "w/c", "", dr.Revision},
		}
		got := checkEvents(t, w, want)
		if ev := got[0]; ev.CreateRevision != ra1.Revision || ev.ModRevision != ra1.Revision || ev.Version != 1 {
			t.Fatalf("first event = %+v", ev)
		}
		if ev := got[2]; ev.CreateRevision != ra1.Revision || ev.ModRevision != ra2.Revision || ev.Version != 2 {
			t.Fatalf("third event = %+v", ev)
		}
		if w.ResumeFrom() != dr.Revision+1 {
			t.Fatalf("ResumeFrom = %d, want %d", w.ResumeFrom(), dr.Revision+1)
		}

		// A new watch from the third event's revision sees the same
		// events from there on, through the other endpoint first.
		cl2 := newClient(t, urls(c, leader, follower))
		w2, err := cl2.Watch(ctx, []byte("w/"), client.WatchOptions{Prefix: true, From: ra2.Revision})
		if err != nil {
			t.Fatal(err)
		}
		defer w2.Close()
		checkEvents(t, w2, want[2:])
	})

	t.Run("one key", func(t *testing.T) {
		ctx := testContext(t)
		w, err := cl.Watch(ctx, []byte("one/k"), client.WatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		mustPut(t, cl, "one/k2", "prefix of nothing")
		mustPut(t, cl, "one/", "not this one")
		r := mustPut(t, cl, "one/k", "this one")
		checkEvents(t, w, []wantEvent{{client.EventPut, "one/k", "this one", r.Revision}})
	})

	t.Run("binary key", func(t *testing.T) {
		ctx := testContext(t)
		key := "\x00?#% /\xff"
		w, err := cl.Watch(ctx, []byte(key), client.WatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		r := mustPut(t, cl, key, "\xfe\x00")
		checkEvents(t, w, []wantEvent{{client.EventPut, key, "\xfe\x00", r.Revision}})
	})

	t.Run("close and cancel stop Next", func(t *testing.T) {
		ctx := testContext(t)
		w, err := cl.Watch(ctx, []byte("idle/"), client.WatchOptions{Prefix: true})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := w.Next()
			done <- err
		}()
		w.Close()
		if err := <-done; !errors.Is(err, client.ErrClosed) {
			t.Fatalf("Next after Close: %v", err)
		}
		w.Close() // idempotent

		cctx, cancel := context.WithCancel(ctx)
		w, err = cl.Watch(cctx, []byte("idle/"), client.WatchOptions{Prefix: true})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		go func() {
			_, err := w.Next()
			done <- err
		}()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Next after cancel: %v", err)
		}
	})

	t.Run("future revision", func(t *testing.T) {
		// Watching from a revision that does not exist yet waits for it.
		ctx := testContext(t)
		r := mustPut(t, cl, "fut/a", "now")
		w, err := cl.Watch(ctx, []byte("fut/"), client.WatchOptions{Prefix: true, From: r.Revision + 2})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		mustPut(t, cl, "fut/b", "skipped")
		r3 := mustPut(t, cl, "fut/c", "seen")
		if r3.Revision != r.Revision+2 {
			t.Skipf("another entry came between the writes (revisions %d, %d)", r.Revision, r3.Revision)
		}
		checkEvents(t, w, []wantEvent{{client.EventPut, "fut/c", "seen", r3.Revision}})
	})
}

// TestWatchLaggedAndCompacted checks the two ways a node cuts a watch short:
// a watcher that falls behind is ended with resume_from, which the client
// follows by itself; a revision older than the history is refused with 410.
func TestWatchLaggedAndCompacted(t *testing.T) {
	c, leader := startCluster(t, testcluster.Config{WatchHistory: 40, WatchBuffer: 1})
	tr := &countingTransport{}
	hc := &http.Client{Transport: tr}
	t.Cleanup(hc.CloseIdleConnections)
	cl := newClient(t, urls(c, leader%3+1, leader), client.WithHTTPClient(hc))

	t.Run("lagged watcher resumes", func(t *testing.T) {
		ctx := testContext(t)
		w, err := cl.Watch(ctx, []byte("lag/"), client.WatchOptions{Prefix: true})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		// Nobody reads the stream while 10 MiB of events pile up: more
		// than the sockets hold, so the server's writes block and the
		// watcher, allowed one pending revision, is closed as lagging.
		value := bytes.Repeat([]byte("v"), 1<<20)
		var want []wantEvent
		for i := range 10 {
			k := fmt.Sprintf("lag/%02d", i)
			r, err := cl.Put(ctx, []byte(k), value, client.Condition{})
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, wantEvent{client.EventPut, k, string(value), r.Revision})
		}
		checkEvents(t, w, want)
		if n := tr.watches.Load(); n < 2 {
			t.Fatalf("%d watch requests: the watcher never lagged, so the test proved nothing", n)
		}
	})

	t.Run("compacted", func(t *testing.T) {
		ctx := testContext(t)
		first := mustPut(t, cl, "cmp/0", "v")
		var last client.Result
		for i := 1; i < 50; i++ {
			last = mustPut(t, cl, fmt.Sprintf("cmp/%d", i), "v")
		}
		_, err := cl.Watch(ctx, []byte("cmp/"), client.WatchOptions{Prefix: true, From: first.Revision})
		var ce *client.CompactedError
		var apiErr *client.APIError
		if !errors.As(err, &ce) || !errors.As(err, &apiErr) || apiErr.Status != http.StatusGone || apiErr.Code != "compacted" {
			t.Fatalf("watch from a compacted revision: %v", err)
		}
		if strings.Contains(err.Error(), "no answer within") {
			// The server answered at once: no timeout is the cause.
			t.Errorf("watch from a compacted revision says %q", err)
		}
		if ce.OldestRevision <= first.Revision || ce.OldestRevision > last.Revision {
			t.Fatalf("oldest revision %d, want within (%d, %d]", ce.OldestRevision, first.Revision, last.Revision)
		}
		// The oldest revision is the least any member held when asked. A
		// member that had not applied every write yet holds one more
		// revision at the front of its history, which moves on as it
		// catches up: a watch from it may be told a later one.
		var w *client.Watcher
		for tries := 0; ; tries++ {
			w, err = cl.Watch(ctx, []byte("cmp/"), client.WatchOptions{Prefix: true, From: ce.OldestRevision})
			var again *client.CompactedError
			if errors.As(err, &again) && tries < 3 && again.OldestRevision > ce.OldestRevision {
				ce = again
				continue
			}
			if err != nil {
				t.Fatalf("watch from the oldest revision: %v", err)
			}
			break
		}
		defer w.Close()
		prev := uint64(0)
		for {
			ev := nextEvent(t, w)
			if ev.Revision < ce.OldestRevision || ev.Revision <= prev {
				t.Fatalf("event at revision %d after %d (oldest %d)", ev.Revision, prev, ce.OldestRevision)
			}
			if prev = ev.Revision; prev == last.Revision {
				break
			}
		}
	})
}

// TestFailover checks that the client moves past an endpoint that does not
// listen and past a stopped node, for requests and for a watch in progress.
func TestFailover(t *testing.T) {
	c, leader := startCluster(t, testcluster.Config{})
	follower := leader%3 + 1
	other := 6 - leader - follower

	t.Run("closed port first", func(t *testing.T) {
		ctx := testContext(t)
		cl := newClient(t, append([]string{closedPort(t)}, urls(c, follower, leader)...))
		r, err := cl.Put(ctx, []byte("fo/closed"), []byte("v"), client.Condition{})
		if err != nil || r.Version != 1 {
			t.Fatalf("put past a closed port = %+v, %v", r, err)
		}
		if kv, err := cl.Get(ctx, []byte("fo/closed"), ""); err != nil || string(kv.Value) != "v" {
			t.Fatalf("get past a closed port = %+v, %v", kv, err)
		}
	})

	t.Run("nothing listens", func(t *testing.T) {
		ctx := testContext(t)
		cl := newClient(t, []string{closedPort(t), closedPort(t)})
		start := time.Now()
		_, err := cl.Put(ctx, []byte("k"), []byte("v"), client.Condition{})
		if !errors.Is(err, client.ErrUnavailable) || errors.Is(err, client.ErrOutcomeUnknown) {
			t.Fatalf("put with no server: %v", err)
		}
		if _, err := cl.Watch(ctx, []byte("k"), client.WatchOptions{}); !errors.Is(err, client.ErrUnavailable) {
			t.Fatalf("watch with no server: %v", err)
		} else if strings.Contains(err.Error(), "no answer within") || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("watch with no server says %q; want the refused connection, not a timeout", err)
		}
		t.Logf("gave up after %v", time.Since(start))
	})

	t.Run("stopped node", func(t *testing.T) {
		ctx := testContext(t)
		cl := newClient(t, urls(c, follower, leader, other))
		writer := newClient(t, urls(c, leader, other))
		w, err := cl.Watch(ctx, []byte("fo/w/"), client.WatchOptions{Prefix: true})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		r1 := mustPut(t, writer, "fo/w/1", "before")
		checkEvents(t, w, []wantEvent{{client.EventPut, "fo/w/1", "before", r1.Revision}})

		if err := c.Stop(follower); err != nil {
			t.Fatal(err)
		}
		// The watch resumes on another node: the next event comes, and
		// nothing twice.
		r2 := mustPut(t, writer, "fo/w/2", "after")
		checkEvents(t, w, []wantEvent{{client.EventPut, "fo/w/2", "after", r2.Revision}})

		r3, err := cl.Put(ctx, []byte("fo/stopped"), []byte("v"), client.Condition{})
		if err != nil || r3.Version != 1 {
			t.Fatalf("put with the first endpoint stopped = %+v, %v", r3, err)
		}
		if kv, err := cl.Get(ctx, []byte("fo/stopped"), ""); err != nil || string(kv.Value) != "v" {
			t.Fatalf("get with the first endpoint stopped = %+v, %v", kv, err)
		}
	})
}

// countingTransport counts the requests it sends over a real transport.
type countingTransport struct {
	http.Transport
	sent    atomic.Int32
	watches atomic.Int32
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.sent.Add(1)
	if strings.HasPrefix(r.URL.Path, "/v1/watch/") {
		c.watches.Add(1)
	}
	return c.Transport.RoundTrip(r)
}

// TestNoRetryWhenOutcomeUnknown checks that a write answered 504 is
// returned, not sent again, and that a 503 is retried.
func TestNoRetryWhenOutcomeUnknown(t *testing.T) {
	// As in server.TestLostQuorum: the leader keeps leading for a second
	// without its followers, and a write times out in 200 ms.
	c, leader := startCluster(t, testcluster.Config{ElectionTicks: 50, RequestTimeout: 200 * time.Millisecond})
	tr := &countingTransport{}
	hc := &http.Client{Transport: tr}
	t.Cleanup(hc.CloseIdleConnections)
	var followers []string
	for _, id := range c.Running() {
		if id != leader {
			followers = append(followers, c.ClientURL(id))
		}
	}
	cl := newClient(t, append(urls(c, leader), followers...), client.WithHTTPClient(hc))
	mustPut(t, cl, "before", "v")
	for _, id := range c.Running() {
		if id != leader {
			if err := c.Stop(id); err != nil {
				t.Fatal(err)
			}
		}
	}

	ctx := testContext(t)
	sent := tr.sent.Load()
	_, err := cl.Put(ctx, []byte("during"), []byte("v"), client.Condition{})
	var apiErr *client.APIError
	if !errors.Is(err, client.ErrOutcomeUnknown) || !errors.As(err, &apiErr) || apiErr.Status != http.StatusGatewayTimeout {
		t.Fatalf("put without quorum: %v, want 504 outcome unknown", err)
	}
	if n := tr.sent.Load() - sent; n != 1 {
		t.Fatalf("the write was sent %d times, want once", n)
	}

	// Once the leader steps down, writes are 503: not applied, so the
	// client sends them again, after the server's Retry-After.
	once := newClient(t, urls(c, leader), client.WithHTTPClient(hc), client.WithMaxAttempts(1))
	c.WaitFor("the leader to refuse writes", func() error {
		_, err := once.Put(ctx, []byte("after"), []byte("v"), client.Condition{})
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusServiceUnavailable && errors.Is(err, client.ErrUnavailable) {
			return nil
		}
		return fmt.Errorf("put: %v", err)
	})
	twice := newClient(t, urls(c, leader), client.WithHTTPClient(hc), client.WithMaxAttempts(2))
	sent = tr.sent.Load()
	if _, err := twice.Put(ctx, []byte("after"), []byte("v"), client.Condition{}); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("put without a leader: %v", err)
	}
	if n := tr.sent.Load() - sent; n != 2 {
		t.Fatalf("a write refused with 503 was sent %d times, want 2 (WithMaxAttempts)", n)
	}
	// Serializable reads still work without a leader.
	if kv, err := cl.Get(ctx, []byte("before"), client.Serializable); err != nil || !bytes.Equal(kv.Value, []byte("v")) {
		t.Fatalf("serializable get without a leader = %+v, %v", kv, err)
	}
}

// TestGiveUpWithTheServersAnswer loses the quorum of a cluster and checks
// that a client of all three nodes gives up with what the live node said
// (503 no_leader), not with the last refused connection, which would hide
// why the cluster cannot serve.
func TestGiveUpWithTheServersAnswer(t *testing.T) {
	c, leader := startCluster(t, testcluster.Config{})
	live := leader%3 + 1
	endpoints := urls(c, live, 1, 2, 3)[:1]
	for _, id := range []uint64{1, 2, 3} {
		if id != live {
			endpoints = append(endpoints, c.ClientURL(id))
			if err := c.Stop(id); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Stopping the leader hands leadership over, possibly to the live member,
	// which is a candidate for a moment (no leader) and then leads until
	// CheckQuorum steps it down; a write in that window waits for a commit
	// that never comes (504). Only a follower or pre-candidate without a
	// leader stays without one: with PreVote it cannot win an election alone.
	c.WaitFor("the live member to lose its leader", func() error {
		st := c.Node(live).Status()
		if st.Leader != 0 || (st.RaftState != "StateFollower" && st.RaftState != "StatePreCandidate") {
			return fmt.Errorf("member %d is %s and follows %d", live, st.RaftState, st.Leader)
		}
		return nil
	})
	cl := newClient(t, endpoints)
	_, err := cl.Put(testContext(t), []byte("k"), []byte("v"), client.Condition{})
	var apiErr *client.APIError
	if !errors.Is(err, client.ErrUnavailable) || !errors.As(err, &apiErr) || apiErr.Code != "no_leader" {
		t.Fatalf("put without a quorum: %v; want the live node's 503 no_leader", err)
	}
}

// TestWatchCompactedOnOneMember checks that a 410 from one member sends the
// watch to the others: a member that was down while the leader compacted its
// log catches up from the leader's snapshot and keeps the history only since
// that snapshot, while the members that kept running still hold the older
// revisions. Only when every endpoint answers 410 is it returned.
func TestWatchCompactedOnOneMember(t *testing.T) {
	const snapshotCount = 20
	c, leader := startCluster(t, testcluster.Config{SnapshotCount: snapshotCount, SnapshotCatchUpEntries: 5, WatchHistory: 1000})
	restarted := leader%3 + 1
	if err := c.Stop(restarted); err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	writer := newClient(t, urls(c, leader))
	var want []wantEvent
	// Past the leader's first snapshot and its catch-up entries, so the
	// stopped member can only catch up from a snapshot.
	for i := 0; c.Node(leader).Status().Snapshot == 0 || i < 2*snapshotCount; i++ {
		if i > 4*snapshotCount {
			t.Fatal("the leader took no snapshot")
		}
		k := fmt.Sprintf("gone/%02d", i)
		want = append(want, wantEvent{client.EventPut, k, "v", mustPut(t, writer, k, "v").Revision})
	}
	c.Restart(restarted)
	c.WaitApplied(c.Node(leader).Status().Applied, restarted)

	from := client.WatchOptions{Prefix: true, From: want[0].revision}
	_, err := newClient(t, urls(c, restarted)).Watch(ctx, []byte("gone/"), from)
	if !errors.As(err, new(*client.CompactedError)) {
		t.Fatalf("watch from %d on the restarted member alone: %v, want compacted (else the test proves nothing)", from.From, err)
	}
	w, err := newClient(t, urls(c, restarted, leader)).Watch(ctx, []byte("gone/"), from)
	if err != nil {
		t.Fatalf("watch from %d, the restarted member first: %v", from.From, err)
	}
	defer w.Close()
	checkEvents(t, w, want)
}

// TestConcurrentRequestsReuseConnections: a client with many requests in
// flight keeps its connections open for the next ones instead of opening
// one per request (net/http keeps two idle connections per host unless told
// otherwise).
func TestConcurrentRequestsReuseConnections(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 1})
	c.WaitLeader()
	// Each request on its own: batches would hide the connections.
	cl := newClient(t, urls(c, 1), client.WithoutBatching())
	const workers, each = 32, 20
	var opened atomic.Int64
	ctx := httptrace.WithClientTrace(testContext(t), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			if !info.Reused {
				opened.Add(1)
			}
		},
	})
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if _, err := cl.Put(ctx, fmt.Appendf(nil, "k%d-%d", w, i), []byte("v"), client.Condition{}); err != nil {
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
	// At most one connection per request in flight at once.
	if n := opened.Load(); n > workers {
		t.Fatalf("%d requests from %d workers opened %d connections, want at most %d", workers*each, workers, n, workers)
	}
}
