package server_test

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftkv/raftkv/internal/testcluster"
	"github.com/raftkv/raftkv/raftnode"
)

// TestWriteAnywhereReadEverywhere checks that a write acknowledged by any
// member is seen by a linearizable read (the default) on every member.
func TestWriteAnywhereReadEverywhere(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	c.WaitLeader()
	want := map[string]string{}
	for _, id := range c.Running() {
		putKeys(t, c, id, fmt.Sprintf("written-on-%d", id), 5, want)
	}
	for _, id := range c.Running() {
		checkKeys(t, c, id, want, testcluster.Linearizable)
	}
}

// TestFollowerReadAfterLeaderWrite checks linearizability across members
// (raft thesis 6.4): a read on a follower that starts after the leader
// acknowledged a write returns that write, never the value before it.
func TestFollowerReadAfterLeaderWrite(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	leader := c.WaitLeader()
	var followers []uint64
	for _, id := range c.Running() {
		if id != leader {
			followers = append(followers, id)
		}
	}
	for i := range 40 {
		value := "v" + strconv.Itoa(i)
		if _, err := c.Put(leader, "x", value); err != nil {
			t.Fatalf("put %d on leader %d: %v", i, leader, err)
		}
		f := followers[i%len(followers)]
		got, err := c.Get(f, "x", testcluster.Linearizable)
		if err != nil {
			t.Fatalf("get on follower %d after put %d: %v", f, i, err)
		}
		if got != value {
			t.Fatalf("follower %d read x=%q right after the leader acknowledged x=%q", f, got, value)
		}
	}
}

// TestRestartKeepsData checks that a member restarted from its data dir
// keeps what it had and catches up on what it missed.
func TestRestartKeepsData(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	leader := c.WaitLeader()
	f := otherThan(c, leader)
	want := map[string]string{}
	last := putKeys(t, c, leader, "before-stop", 20, want)
	c.WaitApplied(last, f)
	if err := c.Stop(f); err != nil {
		t.Fatalf("stop member %d: %v", f, err)
	}
	last = putKeys(t, c, leader, "while-stopped", 20, want)

	c.Restart(f)
	c.WaitApplied(last, f)
	checkKeys(t, c, f, want, testcluster.Serializable)
	checkKeys(t, c, f, want, testcluster.Linearizable)
}

// TestLaggingFollowerCatchesUpBySnapshot checks raft's InstallSnapshot (raft
// paper section 7): a follower that missed entries the leader has already
// compacted away receives a snapshot, and ends with all the data.
func TestLaggingFollowerCatchesUpBySnapshot(t *testing.T) {
	const snapshotCount, catchUp = 50, 20
	c := testcluster.New(t, testcluster.Config{Size: 3, SnapshotCount: snapshotCount, SnapshotCatchUpEntries: catchUp})
	leader := c.WaitLeader()
	f := otherThan(c, leader)
	want := map[string]string{}
	last := putKeys(t, c, leader, "before-stop", 10, want)
	c.WaitApplied(last)
	// The cluster is idle, so the follower's log ends where it applied.
	stoppedAt := c.Server(f).KV().Applied()
	if err := c.Stop(f); err != nil {
		t.Fatalf("stop member %d: %v", f, err)
	}
	last = putKeys(t, c, leader, "while-stopped", 4*snapshotCount, want)
	c.WaitApplied(last)
	// Precondition: whichever member leads has compacted its log past the
	// follower's end, so the follower cannot catch up from the log.
	for _, id := range c.Running() {
		n := c.Node(id)
		c.WaitFor(fmt.Sprintf("member %d compacts past index %d", id, stoppedAt), func() error {
			if st := n.Status(); st.Snapshot <= stoppedAt+catchUp {
				return fmt.Errorf("snapshot index %d keeps entries from %d", st.Snapshot, st.Snapshot-catchUp)
			}
			return nil
		})
	}

	start := time.Now()
	c.Restart(f)
	c.WaitApplied(last, f)
	t.Logf("member %d caught up from index %d to %d in %v", f, stoppedAt, last, time.Since(start))

	if st := c.Node(f).Status(); st.Snapshot <= stoppedAt {
		t.Errorf("member %d: snapshot index %d, not beyond the %d it had applied when stopped: it did not install a snapshot",
			f, st.Snapshot, stoppedAt)
	}
	snaps := filesWithSuffix(t, snapDir(c, f), ".snap")
	if len(snaps) == 0 || snapIndex(t, snaps[len(snaps)-1]) <= stoppedAt {
		t.Errorf("member %d: snapshot files %v: none is beyond index %d", f, snaps, stoppedAt)
	}
	// raftkv carries its state in the snapshot message; the database file
	// rafthttp's receiver saves is empty and must not pile up.
	if dbs := filesWithSuffix(t, snapDir(c, f), ".snap.db"); len(dbs) > 0 {
		t.Errorf("member %d: received snapshot database files left behind: %v", f, dbs)
	}
	checkKeys(t, c, f, want, testcluster.Serializable)
	checkKeys(t, c, f, want, testcluster.Linearizable)
}

// TestMembershipSurvivesFullRestart adds member 4, removes member 3, restarts
// the whole cluster from disk after snapshots covered both changes, and
// checks that the member table, the data and writes survive, and that the
// removed member cannot come back.
func TestMembershipSurvivesFullRestart(t *testing.T) {
	const snapshotCount = 20
	c := testcluster.New(t, testcluster.Config{Size: 3, SnapshotCount: snapshotCount, SnapshotCatchUpEntries: 10})
	c.WaitLeader()
	want := map[string]string{}
	last := putKeys(t, c, 1, "three-members", 10, want)

	if id := c.AddMember(1); id != 4 {
		t.Fatalf("added member %d, want 4", id)
	}
	c.StartJoining(4)
	c.WaitApplied(last, 4)
	putKeys(t, c, 4, "four-members", 10, want)

	c.RemoveMember(1, 3)
	if err := c.WaitStopped(3); !errors.Is(err, raftnode.ErrRemoved) {
		t.Errorf("member 3 stopped after its removal with %q, want %q", err, raftnode.ErrRemoved)
	}

	// The first write after the removal has a higher index than it; once
	// every member's snapshot covers that write, the member table can only
	// come back from the snapshot, as no configuration change follows it.
	leader := c.WaitLeader()
	afterRemoval, err := c.Put(leader, "after-removal", "1")
	if err != nil {
		t.Fatalf("put after removal: %v", err)
	}
	want["after-removal"] = "1"
	last = putKeys(t, c, leader, "three-again", 3*snapshotCount, want)
	survivors := []uint64{1, 2, 4}
	c.WaitApplied(last, survivors...)
	for _, id := range survivors {
		n := c.Node(id)
		c.WaitFor(fmt.Sprintf("member %d snapshots past index %d", id, afterRemoval), func() error {
			if st := n.Status(); st.Snapshot < afterRemoval {
				return fmt.Errorf("snapshot index %d", st.Snapshot)
			}
			return nil
		})
	}

	for _, id := range survivors {
		if err := c.Stop(id); err != nil {
			t.Fatalf("stop member %d: %v", id, err)
		}
	}
	wantMembers := []raftnode.Member{{ID: 1, PeerURLs: []string{c.PeerURL(1)}}, {ID: 2, PeerURLs: []string{c.PeerURL(2)}}, {ID: 4, PeerURLs: []string{c.PeerURL(4)}}}
	samePeers := func(a, b raftnode.Member) bool {
		return a.ID == b.ID && slices.Equal(a.PeerURLs, b.PeerURLs) && !a.IsLearner
	}
	for _, id := range survivors {
		c.Restart(id)
		if got := c.Node(id).Members(); !slices.EqualFunc(got, wantMembers, samePeers) {
			t.Errorf("member %d restarted with members %v, want %v", id, got, wantMembers)
		}
	}
	c.WaitLeader()
	for _, id := range survivors {
		checkKeys(t, c, id, want, testcluster.Linearizable)
	}
	for _, id := range survivors {
		key := "after-restart-" + strconv.FormatUint(id, 10)
		if _, err := c.Put(id, key, "ok"); err != nil {
			t.Fatalf("put on member %d after the restart: %v", id, err)
		}
		want[key] = "ok"
	}
	for _, id := range survivors {
		checkKeys(t, c, id, want, testcluster.Linearizable)
	}

	// Member 3's data dir records its removal, so it must refuse to start
	// rather than rejoin; stopping on its own at once with the same reason
	// is the other acceptable way to fail.
	err = c.TryRestart(3)
	if err == nil {
		t.Logf("member 3 started from its old data; waiting for it to stop")
		err = c.WaitStopped(3)
	}
	if !errors.Is(err, raftnode.ErrRemoved) {
		t.Errorf("restarting removed member 3: %q, want %q", err, raftnode.ErrRemoved)
	}
}

// TestRemovedMemberStopsWithErrRemoved removes several members in turn: each
// must stop on its own with ErrRemoved and must not start again from its data
// dir. Every removal races the member's own apply of the change against its
// peers' refusals and its teardown, so several rounds make a wrong outcome
// show up in one run.
func TestRemovedMemberStopsWithErrRemoved(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	c.WaitLeader()
	want := map[string]string{}
	for round := range 4 {
		id := c.AddMember(1)
		c.StartJoining(id)
		c.WaitLeader()
		last := putKeys(t, c, id, fmt.Sprintf("round-%d", round), 5, want)
		c.WaitApplied(last, id)
		c.RemoveMember(1, id)
		if err := c.WaitStopped(id); !errors.Is(err, raftnode.ErrRemoved) {
			t.Errorf("member %d stopped after its removal with %q, want %q", id, err, raftnode.ErrRemoved)
		}
		err := c.TryRestart(id)
		if err == nil {
			t.Logf("member %d started from its old data; waiting for it to stop", id)
			err = c.WaitStopped(id)
		}
		if !errors.Is(err, raftnode.ErrRemoved) {
			t.Errorf("restarting removed member %d: %q, want %q", id, err, raftnode.ErrRemoved)
		}
	}
	c.WaitLeader()
	checkKeys(t, c, 1, want, testcluster.Linearizable)
}

// TestPurgeBoundsFiles checks that old snapshot and WAL files are removed
// beyond MaxSnapshots and MaxWALs while the newest snapshot is kept.
//
// WAL files: purge removes the oldest *.wal files beyond MaxWALs but stops at
// the first one it cannot lock, because the WAL keeps every segment from the
// one holding the latest snapshot record locked (saveSnapshot releases only
// the locks before it). The count can therefore exceed MaxWALs while more
// than MaxWALs segments follow the latest snapshot; with 64 MB segments and a
// snapshot every 20 entries that never happens here, so the bound is strict.
func TestPurgeBoundsFiles(t *testing.T) {
	const maxSnapshots, maxWALs = 2, 2
	c := testcluster.New(t, testcluster.Config{
		Size: 3, SnapshotCount: 20, SnapshotCatchUpEntries: 10, MaxSnapshots: maxSnapshots, MaxWALs: maxWALs,
	})
	leader := c.WaitLeader()
	want := map[string]string{}
	last := putKeys(t, c, leader, "k", 300, want)
	c.WaitApplied(last)
	for _, id := range c.Running() {
		n := c.Node(id)
		dir := snapDir(c, id)
		// The status is published after the snapshot file is written.
		c.WaitFor(fmt.Sprintf("member %d reports a snapshot past index %d", id, last-20), func() error {
			if st := n.Status(); st.Snapshot+20 <= last {
				return fmt.Errorf("snapshot index %d", st.Snapshot)
			}
			return nil
		})
		st := n.Status()
		snaps := filesWithSuffix(t, dir, ".snap")
		wals := filesWithSuffix(t, filepath.Join(c.DataDir(id), "member", "wal"), ".wal")
		t.Logf("member %d: snapshot index %d, snapshot files %v, wal files %v", id, st.Snapshot, snaps, wals)
		if len(snaps) == 0 || len(snaps) > maxSnapshots {
			t.Errorf("member %d: %d snapshot files, want 1 to %d", id, len(snaps), maxSnapshots)
		}
		if len(snaps) > 0 && snapIndex(t, snaps[len(snaps)-1]) != st.Snapshot {
			t.Errorf("member %d: newest snapshot file %s, want index %d", id, snaps[len(snaps)-1], st.Snapshot)
		}
		if len(wals) == 0 || len(wals) > maxWALs {
			t.Errorf("member %d: %d wal files, want 1 to %d", id, len(wals), maxWALs)
		}
	}
	checkKeys(t, c, leader, want, testcluster.Linearizable)
}

// putKeys writes n keys prefix-0..prefix-(n-1) through member id, a few at a
// time (retrying a 503 or 504, as after an election), records them in want
// and returns the highest revision.
func putKeys(t *testing.T, c *testcluster.Cluster, id uint64, prefix string, n int, want map[string]string) uint64 {
	t.Helper()
	const workers = 4
	var (
		mu      sync.Mutex
		last    uint64
		firstEr error
		wg      sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				rev, err := c.PutRetry(id, fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("value-%s-%d", prefix, i))
				mu.Lock()
				last = max(last, rev)
				if err != nil && firstEr == nil {
					firstEr = err
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if firstEr != nil {
		t.Fatalf("put %s-* on member %d: %v", prefix, id, firstEr)
	}
	for i := range n {
		want[fmt.Sprintf("%s-%d", prefix, i)] = fmt.Sprintf("value-%s-%d", prefix, i)
	}
	return last
}

// checkKeys reads every key of want on member id.
func checkKeys(t *testing.T, c *testcluster.Cluster, id uint64, want map[string]string, consistency testcluster.Consistency) {
	t.Helper()
	failures := 0
	for _, key := range slices.Sorted(maps.Keys(want)) {
		got, err := c.Get(id, key, consistency)
		switch {
		case err != nil:
			t.Errorf("member %d: %s get %q: %v", id, consistency, key, err)
		case got != want[key]:
			t.Errorf("member %d: %s get %q = %q, want %q", id, consistency, key, got, want[key])
		default:
			continue
		}
		if failures++; failures == 5 {
			t.Fatalf("member %d: giving up after %d failed reads of %d keys", id, failures, len(want))
		}
	}
}

// otherThan returns a running member other than id.
func otherThan(c *testcluster.Cluster, id uint64) uint64 {
	for _, other := range c.Running() {
		if other != id {
			return other
		}
	}
	panic("otherThan: a single member")
}

func snapDir(c *testcluster.Cluster, id uint64) string {
	return filepath.Join(c.DataDir(id), "member", "snap")
}

// filesWithSuffix lists the names in dir that end in suffix, sorted.
func filesWithSuffix(t *testing.T, dir, suffix string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), suffix) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names
}

// snapIndex parses the index from a snapshot file name, <term>-<index>.snap
// in zero-padded hex.
func snapIndex(t *testing.T, name string) uint64 {
	t.Helper()
	_, idx, ok := strings.Cut(strings.TrimSuffix(name, ".snap"), "-")
	index, err := strconv.ParseUint(idx, 16, 64)
	if !ok || err != nil {
		t.Fatalf("snapshot file name %q is not <term>-<index>.snap", name)
	}
	return index
}

// TestRestartReportsTermFromDisk checks that a restarted member reports the
// term and commit index of the hard state on disk at once, in Status, the
// X-Raft-Term header and Term(), not 0 until an election completes, and
// keeps reporting them through its next Readys (raft puts a hard state in a
// Ready only when it changes). The member restarts alone, so no election
// can complete while it is checked.
func TestRestartReportsTermFromDisk(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	leader := c.WaitLeader()
	f := otherThan(c, leader)
	putKeys(t, c, leader, "k", 5, map[string]string{})
	// The follower first, so that no hand-over at the others' stop raises
	// its term. Once Stop returns, its last published status is what its
	// disk holds.
	node := c.Node(f)
	if err := c.Stop(f); err != nil {
		t.Fatalf("stop member %d: %v", f, err)
	}
	want := node.Status()
	if want.Term == 0 || want.Commit == 0 {
		t.Fatalf("member %d stopped at term %d, commit %d", f, want.Term, want.Commit)
	}
	for _, id := range c.Running() {
		if err := c.Stop(id); err != nil {
			t.Fatalf("stop member %d: %v", id, err)
		}
	}

	c.Restart(f)
	// The disk may hold a later commit than the status published before
	// the stop: the hard state is saved before the status is published.
	restarted := c.Node(f).Status()
	if restarted.Term != want.Term || restarted.Commit < want.Commit {
		t.Errorf("right after the restart: term %d, commit %d; want %d, at least %d from disk", restarted.Term, restarted.Commit, want.Term, want.Commit)
	}
	resp, err := c.HTTPClient().Get(c.ClientURL(f) + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Raft-Term"); got != strconv.FormatUint(want.Term, 10) {
		t.Errorf("X-Raft-Term = %q after the restart, want %d", got, want.Term)
	}
	if got := c.Node(f).Term(); got != want.Term {
		t.Errorf("Term() = %d after the restart, want %d", got, want.Term)
	}
	// Alone, it pre-votes in vain: Readys without a hard state.
	c.WaitFor("the lone member to campaign", func() error {
		if st := c.Node(f).Status(); st.RaftState != "StatePreCandidate" {
			return fmt.Errorf("member %d is %s", f, st.RaftState)
		}
		return nil
	})
	if got := c.Node(f).Status(); got.Term != want.Term || got.Commit != restarted.Commit || got.Applied < restarted.Commit {
		t.Errorf("campaigning alone: term %d, commit %d, applied %d; want %d, %d, %d", got.Term, got.Commit, got.Applied, want.Term, restarted.Commit, restarted.Commit)
	}
}

// TestJoinUnderRemovedIDIsRefused starts a node with --join under the id of
// a member that was removed, on an empty data dir: the cluster lists the id
// as removed, so the start fails at once saying to use a new id, instead of
// telling the operator to add the member (which raft would refuse) after
// the request timeout.
func TestJoinUnderRemovedIDIsRefused(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	leader := c.WaitLeader()
	id := c.AddMember(leader)
	c.StartJoining(id)
	c.RemoveMember(leader, id)
	if err := c.WaitStopped(id); !errors.Is(err, raftnode.ErrRemoved) {
		t.Fatalf("member %d stopped with %v, want ErrRemoved", id, err)
	}
	if err := os.RemoveAll(c.DataDir(id)); err != nil {
		t.Fatal(err)
	}
	err := c.TryRestart(id)
	if !errors.Is(err, raftnode.ErrInvalidConfig) || !strings.Contains(err.Error(), "was removed from the cluster") || !strings.Contains(err.Error(), "new id") {
		t.Fatalf("joining under removed id %d: %v; want a refusal that says to use a new id", id, err)
	}
}
