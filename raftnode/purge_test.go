package raftnode

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	"github.com/raftkv/raftkv/internal/waltest"
)

// TestPurgeKeepsTheWALOfKeptSnapshots checks that the older snapshots kept
// by MaxSnapshots can really stand in for a corrupt newest one: purge must
// keep the WAL files needed to replay from each of them. It writes 130 MiB
// of 1 MiB entries, so that etcd's 64 MB WAL segments are cut twice, with a
// snapshot every 10 entries and purge(MaxSnapshots 5, MaxWALs 1) after each,
// as the node does; then it corrupts the newest snapshot (at 130) and opens
// the data dir again. The next older snapshot (120) is still on disk and
// the WAL recorded it, so the member should start from it and replay
// 121..130.
//
// Today it refuses instead ("wal: file not found which matches the snapshot
// index '0'"): saveSnapshot releases the WAL's locks up to the newest
// snapshot, so purge removes every segment but the last (which starts at
// entry 125), and with them entries 121..124 and the WAL's records of
// snapshots 90..120; LoadNewestAvailable then finds no valid
// snapshot the WAL knows, and the WAL cannot be opened from index 0. No
// data is lost (the member refuses to start), but the kept snapshots are
// useless, and the message does not say why. A fix: release the WAL's locks
// only up to the oldest snapshot still kept (or purge snapshots and WAL
// files together), so that every kept snapshot stays a usable fallback.
func TestPurgeKeepsTheWALOfKeptSnapshots(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 130 MiB")
	}
	lg := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	dir := t.TempDir()
	s, _, err := openStorage(lg, dir, 1, testClusterID)
	if err != nil {
		t.Fatal(err)
	}
	cs := &raftpb.ConfState{Voters: []uint64{1}}
	data := bytes.Repeat([]byte("x"), 1<<20)
	for i := uint64(1); i <= 130; i++ {
		e := &raftpb.Entry{Term: proto.Uint64(1), Index: proto.Uint64(i), Type: raftpb.EntryNormal.Enum(), Data: data}
		if err := s.wal.Save(testHardState(i), []*raftpb.Entry{e}); err != nil {
			t.Fatal(err)
		}
		if i%10 != 0 {
			continue
		}
		md := &raftpb.SnapshotMetadata{Index: proto.Uint64(i), Term: proto.Uint64(1), ConfState: cs}
		if err := s.saveSnapshot(md, fmt.Appendf(nil, "state at %d", i)); err != nil {
			t.Fatal(err)
		}
		if err := s.purge(5, 1, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "member", "snap", "*.snap"))
	slices.Sort(snaps)
	if len(snaps) != 5 {
		t.Fatalf("want the 5 newest snapshots kept, found %v", snaps)
	}
	waltest.FlipBits(t, snaps[len(snaps)-1], 20, 0x01)

	s, ds, err := openStorage(lg, dir, 1, 0)
	if err != nil {
		wals, _ := filepath.Glob(filepath.Join(dir, "member", "wal", "*.wal"))
		t.Fatalf("with the newest snapshot corrupt and 4 older ones kept, the member refuses to start: %v\n(WAL files left: %v)", err, wals)
	}
	defer s.close()
	if got := ds.snapshot.GetMetadata().GetIndex(); got != 120 {
		t.Fatalf("started from the snapshot at %d, want 120", got)
	}
	if len(ds.entries) != 10 || ds.entries[0].GetIndex() != 121 {
		t.Fatalf("replayed %d entries from %d, want 121..130", len(ds.entries), ds.entries[0].GetIndex())
	}
}
