package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/raftkv/raftkv/internal/testcluster"
	"github.com/raftkv/raftkv/kvstore"
)

// These tests drive the key-value service of real in-process members
// directly (the HTTP layer has its own tests): revisions, compare-and-swap
// races across members, and watches.

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// listAll returns every key of member id's store, serializably.
func listAll(t *testing.T, c *testcluster.Cluster, id uint64) []kvstore.KeyValue {
	t.Helper()
	res, err := c.Server(id).KV().List(testContext(t), kvstore.ListRequest{Limit: 1 << 20, Serializable: true})
	if err != nil {
		t.Fatal(err)
	}
	return res.KVs
}

func sameKVs(a, b []kvstore.KeyValue) bool {
	return slices.EqualFunc(a, b, func(x, y kvstore.KeyValue) bool {
		return string(x.Key) == string(y.Key) && string(x.Value) == string(y.Value) &&
			x.CreateRevision == y.CreateRevision && x.ModRevision == y.ModRevision && x.Version == y.Version
	})
}

// TestRevisionsSurviveRestartAndSnapshots checks that every member, whether
// it replayed its WAL, loaded its own snapshot or received the leader's,
// ends with identical keys, values and revisions.
func TestRevisionsSurviveRestartAndSnapshots(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3, SnapshotCount: 25, SnapshotCatchUpEntries: 5})
	leader := c.WaitLeader()
	kv := c.Server(leader).KV()
	ctx := testContext(t)
	put := func(key string, i int) {
		if _, err := kv.Put(ctx, []byte(key), fmt.Appendf(nil, "v%d", i), kvstore.Condition{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 30 {
		put(fmt.Sprintf("k%02d", i%7), i)
	}
	follower := leader%3 + 1
	if err := c.Stop(follower); err != nil {
		t.Fatal(err)
	}
	for i := 30; i < 90; i++ {
		put(fmt.Sprintf("k%02d", i%11), i)
	}
	if _, err := kv.Delete(ctx, []byte("k03"), kvstore.Condition{}); err != nil {
		t.Fatal(err)
	}
	want := listAll(t, c, leader)
	it, _, err := kv.Get(ctx, []byte("k00"), false)
	if err != nil || it.Version < 2 || it.CreateRevision >= it.ModRevision {
		t.Fatalf("k00 = %+v, %v: want several versions", it, err)
	}

	c.Restart(follower) // catches up through the leader's snapshot
	last := kv.Store().Revision()
	c.WaitApplied(last, c.Running()...)
	for _, id := range c.Running() {
		if got := listAll(t, c, id); !sameKVs(got, want) {
			t.Fatalf("member %d after catch-up differs from the leader", id)
		}
	}
	// A full restart: everyone rebuilds from its own snapshot and WAL.
	for _, id := range c.Running() {
		if err := c.Stop(id); err != nil {
			t.Fatal(err)
		}
	}
	for id := uint64(1); id <= 3; id++ {
		c.Restart(id)
	}
	c.WaitLeader()
	c.WaitApplied(last, c.Running()...)
	for _, id := range c.Running() {
		if got := listAll(t, c, id); !sameKVs(got, want) {
			t.Fatalf("member %d after a full restart differs", id)
		}
	}
}

// TestCompareAndSwapRace runs read-modify-write loops on one key from every
// member at once: each revision of the key can be won by exactly one writer,
// and every win is counted in the key's version.
func TestCompareAndSwapRace(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	leader := c.WaitLeader()
	ctx := testContext(t)
	first, err := c.Server(leader).KV().Put(ctx, []byte("counter"), []byte("0"), kvstore.Condition{}, 0)
	if err != nil {
		t.Fatal(err)
	}

	const writersPerMember, attempts = 3, 15
	var mu sync.Mutex
	wonAt := map[uint64]int{} // expected revision -> wins
	failed := 0
	var wg sync.WaitGroup
	for _, id := range c.Running() {
		kv := c.Server(id).KV()
		for w := range writersPerMember {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for a := range attempts {
					it, _, err := kv.Get(ctx, []byte("counter"), false)
					if err != nil {
						t.Error(err)
						return
					}
					_, err = kv.Put(ctx, []byte("counter"), fmt.Appendf(nil, "%d/%d/%d", id, w, a),
						kvstore.Condition{Kind: kvstore.CondModRevision, ModRevision: it.ModRevision}, 0)
					mu.Lock()
					switch {
					case err == nil:
						wonAt[it.ModRevision]++
					case errors.Is(err, kvstore.ErrPreconditionFailed):
						failed++
					default:
						t.Error(err)
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	wins := 0
	for rev, n := range wonAt {
		if n != 1 {
			t.Errorf("revision %d was won %d times", rev, n)
		}
		wins += n
	}
	it, _, err := c.Server(leader).KV().Get(ctx, []byte("counter"), false)
	if err != nil {
		t.Fatal(err)
	}
	if it.Version != uint64(1+wins) || it.CreateRevision != first.Revision {
		t.Fatalf("counter at version %d (created %d), want %d after %d wins (created %d)", it.Version, it.CreateRevision, 1+wins, wins, first.Revision)
	}
	if wins == 0 || failed == 0 {
		t.Fatalf("%d wins and %d conflicts: the race did not happen", wins, failed)
	}
	t.Logf("%d compare-and-swaps won, %d refused", wins, failed)
}

// TestConcurrentWritesThroughFollower: writes proposed on a follower at
// once, which it forwards to the leader several to a message, are each
// applied once, at a revision of their own, and answered with it.
func TestConcurrentWritesThroughFollower(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	leader := c.WaitLeader()
	follower := otherThan(c, leader)
	ctx := testContext(t)
	kv := c.Server(follower).KV()
	const writers, each = 64, 5
	var mu sync.Mutex
	revisions := map[uint64]string{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				key := fmt.Sprintf("k%d-%d", w, i)
				res, err := kv.Put(ctx, []byte(key), []byte(key), kvstore.Condition{}, 0)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if other, ok := revisions[res.Revision]; ok {
					t.Errorf("%s and %s both answered with revision %d", key, other, res.Revision)
				}
				revisions[res.Revision] = key
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	lkv := c.Server(leader).KV()
	for rev, key := range revisions {
		it, _, err := lkv.Get(ctx, []byte(key), false)
		if err != nil || string(it.Value) != key || it.ModRevision != rev {
			t.Fatalf("%s on the leader: %+v, %v; want its value at revision %d", key, it, err, rev)
		}
	}
	if len(revisions) != writers*each {
		t.Fatalf("%d writes answered, want %d", len(revisions), writers*each)
	}
}

// TestCreateOnlyRace: many members create the same key at once; one wins.
func TestCreateOnlyRace(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	c.WaitLeader()
	ctx := testContext(t)
	for round := range 5 {
		key := []byte(fmt.Sprintf("lock-%d", round))
		var wg sync.WaitGroup
		results := make(chan error, 12)
		for i := range 12 {
			kv := c.Server(uint64(i%3 + 1)).KV()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := kv.Put(ctx, key, fmt.Appendf(nil, "owner-%d", i), kvstore.Condition{Kind: kvstore.CondAbsent}, 0)
				results <- err
			}()
		}
		wg.Wait()
		close(results)
		won := 0
		for err := range results {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, kvstore.ErrPreconditionFailed):
				t.Fatal(err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d creators won, want 1", round, won)
		}
	}
}

// TestWatchOnFollower watches on a follower while every member writes: the
// watcher sees every change in revision order; cut and resumed from the
// next revision it misses nothing and repeats nothing.
func TestWatchOnFollower(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3, WatchHistory: 1000})
	leader := c.WaitLeader()
	follower := leader%3 + 1
	ctx := testContext(t)
	w, err := c.Server(follower).KV().Watch([]byte("w/"), true, 0)
	if err != nil {
		t.Fatal(err)
	}

	const writes = 60
	var wrote []uint64
	for i := range writes {
		kv := c.Server(uint64(i%3 + 1)).KV()
		res, err := kv.Put(ctx, fmt.Appendf(nil, "w/%d", i%5), fmt.Appendf(nil, "%d", i), kvstore.Condition{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		wrote = append(wrote, res.Revision)
		if _, err := kv.Put(ctx, []byte("unwatched"), []byte("x"), kvstore.Condition{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	var seen []uint64
	for len(seen) < writes/2 {
		ch, err := w.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, ch.Revision)
	}
	w.Close() // the connection is cut
	w, err = c.Server(follower).KV().Watch([]byte("w/"), true, seen[len(seen)-1]+1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for len(seen) < writes {
		ch, err := w.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range ch.Events {
			if ev.Type != kvstore.EventPut || ev.Item.ModRevision != ch.Revision {
				t.Fatalf("event %+v at revision %d", ev, ch.Revision)
			}
		}
		seen = append(seen, ch.Revision)
	}
	if !slices.Equal(seen, wrote) {
		t.Fatalf("watched revisions %v, wrote %v", seen, wrote)
	}
}

// TestWatchCompactedOnMember checks that a revision beyond a member's watch
// history is refused with the oldest revision still available.
func TestWatchCompactedOnMember(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 1, WatchHistory: 10})
	c.WaitLeader()
	kv := c.Server(1).KV()
	ctx := testContext(t)
	var first uint64
	for i := range 30 {
		res, err := kv.Put(ctx, []byte("k"), fmt.Appendf(nil, "%d", i), kvstore.Condition{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = res.Revision
		}
	}
	_, err := kv.Watch([]byte("k"), false, first)
	var ce *kvstore.CompactedError
	if !errors.As(err, &ce) || ce.Oldest <= first {
		t.Fatalf("watch from %d = %v, want compacted", first, err)
	}
	w, err := kv.Watch([]byte("k"), false, ce.Oldest)
	if err != nil {
		t.Fatalf("watch from the oldest available %d: %v", ce.Oldest, err)
	}
	w.Close()
}

// TestStalledWatcherDoesNotBlockWrites: a watcher that never reads is closed
// as lagged while every write keeps being acknowledged.
func TestStalledWatcherDoesNotBlockWrites(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3, WatchBuffer: 4})
	leader := c.WaitLeader()
	follower := leader%3 + 1
	ctx := testContext(t)
	stalled, err := c.Server(follower).KV().Watch(nil, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	for i := range 50 {
		if _, err := c.Server(leader).KV().Put(ctx, fmt.Appendf(nil, "k%d", i), []byte("v"), kvstore.Condition{}, 0); err != nil {
			t.Fatalf("write %d with a stalled watcher: %v", i, err)
		}
	}
	var err2 error
	for n := 0; ; n++ {
		if _, err2 = stalled.Next(ctx); err2 != nil {
			break
		}
		if n > 4 {
			t.Fatal("the stalled watcher received more than its buffer")
		}
	}
	var we *kvstore.WatchError
	if !errors.As(err2, &we) || !errors.Is(err2, kvstore.ErrWatcherLagged) || we.ResumeFrom == 0 {
		t.Fatalf("stalled watcher ended with %v, want lagged with a resume revision", err2)
	}
	if n := c.Server(follower).KV().Watchers(); n != 0 {
		t.Fatalf("%d watchers still registered", n)
	}
}

// TestWatchHistoryAfterRestart checks that a restarted member serves the
// watch history it served before: the restart replays from an older
// snapshot (here the log's start) so that writes before its newest
// snapshot are in the history again, and the state it rebuilds is the
// cluster's.
func TestWatchHistoryAfterRestart(t *testing.T) {
	const snapshotCount = 20
	c := testcluster.New(t, testcluster.Config{Size: 3, SnapshotCount: snapshotCount, SnapshotCatchUpEntries: 5, WatchHistory: 1000})
	leader := c.WaitLeader()
	follower := leader%3 + 1
	kv := c.Server(follower).KV()
	ctx := testContext(t)
	put := func(i int) uint64 {
		t.Helper()
		res, err := kv.Put(ctx, fmt.Appendf(nil, "h/%d", i), []byte("v"), kvstore.Condition{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		return res.Revision
	}
	// A write through the follower returns once the follower applied it,
	// so its snapshot index is known to have moved once one shows.
	first := put(0)
	i := 1
	for ; c.Server(follower).Node().Status().Snapshot == 0; i++ {
		if i > 3*snapshotCount {
			t.Fatal("the follower took no snapshot")
		}
		put(i)
	}
	// Fewer writes than another snapshot needs: all are after the one taken.
	var after []uint64
	for range snapshotCount / 2 {
		after = append(after, put(i))
		i++
	}
	snap := c.Server(follower).Node().Status().Snapshot
	if err := c.Stop(follower); err != nil {
		t.Fatal(err)
	}
	c.Restart(follower)
	c.WaitApplied(c.Server(leader).Node().Status().Applied, follower)
	if got := c.Server(follower).Node().Status().Snapshot; got != snap {
		t.Fatalf("snapshot index %d after the restart, want %d: the test needs the member's own", got, snap)
	}

	kv = c.Server(follower).KV()
	w, err := kv.Watch([]byte("h/"), true, first)
	if err != nil {
		t.Fatalf("watch from %d, before the member's snapshot at %d: %v", first, snap, err)
	}
	defer w.Close()
	var seen []uint64
	for len(seen) == 0 || seen[len(seen)-1] < after[len(after)-1] {
		ch, err := w.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range ch.Events {
			if !bytes.HasPrefix(ev.Key, []byte("h/")) || ev.Item.ModRevision != ch.Revision {
				t.Fatalf("event %+v at revision %d", ev, ch.Revision)
			}
		}
		seen = append(seen, ch.Revision)
	}
	if seen[0] != first || !slices.IsSorted(seen) || len(seen) != i {
		t.Fatalf("watched %d revisions from %d (%v), want the %d writes from %d", len(seen), seen[0], seen, i, first)
	}
	if !slices.Equal(seen[len(seen)-len(after):], after) {
		t.Fatalf("watched revisions %v end, wrote %v", seen[len(seen)-len(after):], after)
	}
	// The replay rebuilt the cluster's state.
	res, err := kv.List(ctx, kvstore.ListRequest{Prefix: []byte("h/"), Limit: 1000, Serializable: true})
	if err != nil || len(res.KVs) != i || res.Revision != after[len(after)-1] {
		t.Fatalf("the restarted member lists %d keys at revision %d (%v), want %d at %d", len(res.KVs), res.Revision, err, i, after[len(after)-1])
	}
}
