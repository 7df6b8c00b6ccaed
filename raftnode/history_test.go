package raftnode

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"
)

func TestHistoryStart(t *testing.T) {
	recs := func(idx ...uint64) []*walpb.Snapshot {
		var out []*walpb.Snapshot
		for _, i := range idx {
			out = append(out, &walpb.Snapshot{Index: proto.Uint64(i), Term: proto.Uint64(1)})
		}
		return out
	}
	all := func(*walpb.Snapshot) bool { return true }
	tests := []struct {
		name                 string
		snaps                []*walpb.Snapshot
		newest, commit, want uint64
		usable               func(*walpb.Snapshot) bool
		from                 uint64
		ok                   bool
	}{
		{"enough after the newest", recs(0, 100, 200), 200, 260, 50, all, 0, false},
		{"the newest record that leaves want", recs(0, 100, 200), 200, 260, 100, all, 100, true},
		{"a further one when the nearer leaves too few", recs(0, 100, 200), 200, 260, 150, all, 100, true},
		{"the log's start when want reaches it", recs(0, 100, 200), 200, 260, 1000, all, 0, true},
		{"never further back than 2*want", recs(0, 100, 500), 500, 560, 100, all, 0, false},
		{"the oldest within reach when none leaves want", recs(100, 200), 200, 260, 150, all, 100, true},
		{"no record older than the newest", recs(200), 200, 260, 150, all, 0, false},
		{"an unusable record is skipped", recs(0, 100, 200), 200, 260, 150,
			func(r *walpb.Snapshot) bool { return r.GetIndex() != 100 }, 0, true},
		{"commit below the newest snapshot", recs(0, 100, 200), 200, 150, 100, all, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, ok := historyStart(tt.snaps, tt.newest, tt.commit, tt.want, tt.usable)
			if ok != tt.ok || (ok && from.GetIndex() != tt.from) {
				t.Fatalf("historyStart = %v, %v; want %d, %v", from.GetIndex(), ok, tt.from, tt.ok)
			}
		})
	}
}

// writeHistoryDir writes member 1's data dir: entries 1..n at term 1, each
// committed, and a snapshot (a valid envelope) at every index in snaps.
func writeHistoryDir(t *testing.T, lg *zap.Logger, n uint64, snaps ...uint64) (string, []*raftpb.Entry) {
	t.Helper()
	dir := t.TempDir()
	s, _, err := openStorage(lg, dir, 1, testClusterID)
	if err != nil {
		t.Fatal(err)
	}
	var ents []*raftpb.Entry
	cs := &raftpb.ConfState{Voters: []uint64{1}}
	for i := uint64(1); i <= n; i++ {
		e := testEntry(i)
		ents = append(ents, e)
		if err := s.wal.Save(testHardState(i), []*raftpb.Entry{e}); err != nil {
			t.Fatal(err)
		}
		for _, si := range snaps {
			if si == i {
				saveTestSnapshot(t, s, i, 1, cs)
			}
		}
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	return dir, ents
}

func saveTestSnapshot(t *testing.T, s *storage, index, term uint64, cs *raftpb.ConfState) {
	t.Helper()
	md := &raftpb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(term), ConfState: cs}
	if err := s.saveSnapshot(md, envelopeHeader(envelopeMagic, newMembership()), fmt.Appendf(nil, "state at %d", index)); err != nil {
		t.Fatal(err)
	}
}

// TestRewind opens real data dirs and checks where the replay starts.
func TestRewind(t *testing.T) {
	lg := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	open := func(t *testing.T, dir string, want uint64) *diskState {
		t.Helper()
		s, ds, err := openStorage(lg, dir, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.close() })
		if got := ds.snapshot.GetMetadata().GetIndex(); got != 20 {
			t.Fatalf("opened at snapshot %d, want the newest, 20", got)
		}
		s.rewind(ds, want)
		return ds
	}
	check := func(t *testing.T, ds *diskState, ents []*raftpb.Entry, from, newest uint64) {
		t.Helper()
		if got := ds.snapshot.GetMetadata().GetIndex(); got != from {
			t.Fatalf("replay starts at snapshot %d, want %d", got, from)
		}
		if ds.newestSnapshot != newest {
			t.Fatalf("newestSnapshot = %d, want %d", ds.newestSnapshot, newest)
		}
		if !sameEntries(ds.entries, ents[from:]) {
			t.Fatalf("replayed entries: %s", describeEntries(ds.entries, ents[from:]))
		}
		if from > 0 && !bytes.HasSuffix(ds.snapshot.GetData(), fmt.Appendf(nil, "state at %d", from)) {
			t.Fatalf("snapshot data %q is not the one at %d", ds.snapshot.GetData(), from)
		}
	}

	t.Run("older snapshot", func(t *testing.T) {
		dir, ents := writeHistoryDir(t, lg, 30, 10, 20)
		check(t, open(t, dir, 15), ents, 10, 20)
	})
	t.Run("the whole log", func(t *testing.T) {
		dir, ents := writeHistoryDir(t, lg, 30, 10, 20)
		ds := open(t, dir, 25)
		if ds.snapshot != nil || ds.newestSnapshot != 20 || !sameEntries(ds.entries, ents) {
			t.Fatalf("replay from %v with %d entries, want the whole log", ds.snapshot.GetMetadata(), len(ds.entries))
		}
	})
	t.Run("enough after the newest", func(t *testing.T) {
		dir, ents := writeHistoryDir(t, lg, 30, 10, 20)
		check(t, open(t, dir, 5), ents, 20, 0)
	})
	t.Run("older snapshot file gone", func(t *testing.T) {
		dir, ents := writeHistoryDir(t, lg, 30, 10, 20)
		if err := os.Remove(filepath.Join(dir, "member", "snap", fmt.Sprintf(snapFileName, 1, 10))); err != nil {
			t.Fatal(err)
		}
		// The WAL's start (record 0) is within reach: the whole log.
		ds := open(t, dir, 15)
		if ds.snapshot != nil || !sameEntries(ds.entries, ents) {
			t.Fatalf("replay from %v with %d entries, want the whole log", ds.snapshot.GetMetadata(), len(ds.entries))
		}
	})
	t.Run("a leader's snapshot replaced the log", func(t *testing.T) {
		// Entries 1..12 at term 1, a snapshot at 10, then a snapshot from
		// the leader at 20 term 2 (the member never had 13..20), then 21..30.
		dir := t.TempDir()
		s, _, err := openStorage(lg, dir, 1, testClusterID)
		if err != nil {
			t.Fatal(err)
		}
		cs := &raftpb.ConfState{Voters: []uint64{1}}
		var ents []*raftpb.Entry
		for i := uint64(1); i <= 30; i++ {
			if i > 12 && i <= 20 {
				continue
			}
			e := testEntry(i)
			if i > 20 {
				e.Term = proto.Uint64(2)
			}
			ents = append(ents, e)
			if err := s.wal.Save(testHardState(i), []*raftpb.Entry{e}); err != nil {
				t.Fatal(err)
			}
			if i == 10 {
				saveTestSnapshot(t, s, 10, 1, cs)
			}
			if i == 12 {
				saveTestSnapshot(t, s, 20, 2, cs)
			}
		}
		if err := s.close(); err != nil {
			t.Fatal(err)
		}
		ds := open(t, dir, 15)
		if got := ds.snapshot.GetMetadata().GetIndex(); got != 20 || ds.newestSnapshot != 0 || !sameEntries(ds.entries, ents[len(ents)-10:]) {
			t.Fatalf("replay from %d with %d entries: the log before the leader's snapshot was used", got, len(ds.entries))
		}
	})
}
