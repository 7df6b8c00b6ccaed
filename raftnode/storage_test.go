package raftnode

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	"github.com/raftkv/raftkv/internal/waltest"
)

// These tests crash-test the storage layer on real WAL and snapshot files:
// they write with etcd's wal and snap packages through openStorage, damage
// the files the way a crash or a bad disk would, and open them again.

const testClusterID = 0x1234

// entryFrames returns the frames that hold log entries.
func entryFrames(frames []waltest.Frame) []waltest.Frame {
	var out []waltest.Frame
	for _, f := range frames {
		if f.Entry != nil {
			out = append(out, f)
		}
	}
	return out
}

// walSegment returns the one WAL segment of the data dir.
func walSegment(t testing.TB, dataDir string) string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dataDir, "member", "wal", "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 {
		t.Fatalf("want one WAL segment in %s, found %v", dataDir, names)
	}
	return names[0]
}

func testEntry(i uint64) *raftpb.Entry {
	return &raftpb.Entry{Term: proto.Uint64(1), Index: proto.Uint64(i), Type: raftpb.EntryNormal.Enum(),
		Data: fmt.Appendf(nil, "entry %d: %s", i, strings.Repeat("x", int(i)))}
}

func testHardState(commit uint64) *raftpb.HardState {
	return &raftpb.HardState{Term: proto.Uint64(1), Vote: proto.Uint64(1), Commit: proto.Uint64(commit)}
}

// writeTestWAL creates member 1's data dir in dir and saves entries 1..n,
// each in its own fsynced write followed by the hard state that commits it,
// as the Ready loop does. It returns the entries.
func writeTestWAL(t testing.TB, lg *zap.Logger, dir string, n uint64) []*raftpb.Entry {
	t.Helper()
	s, ds, err := openStorage(lg, dir, 1, testClusterID)
	if err != nil {
		t.Fatal(err)
	}
	if !ds.fresh {
		t.Fatal("a new data dir is not fresh")
	}
	var ents []*raftpb.Entry
	for i := uint64(1); i <= n; i++ {
		e := testEntry(i)
		if err := s.wal.Save(testHardState(i-1), []*raftpb.Entry{e}); err != nil {
			t.Fatal(err)
		}
		if err := s.wal.Save(testHardState(i), nil); err != nil {
			t.Fatal(err)
		}
		ents = append(ents, e)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	return ents
}

// copyDataDir copies the WAL segments (the first limit bytes of the last
// one, all of it when limit < 0) and the snapshots of src into a new data dir.
func copyDataDir(t testing.TB, src string, limit int64) string {
	t.Helper()
	dst := t.TempDir()
	for _, sub := range []string{"wal", "snap"} {
		from, to := filepath.Join(src, "member", sub), filepath.Join(dst, "member", sub)
		if err := os.MkdirAll(to, 0o700); err != nil {
			t.Fatal(err)
		}
		names, err := os.ReadDir(from)
		if err != nil {
			t.Fatal(err)
		}
		for i, de := range names {
			if sub == "wal" && !strings.HasSuffix(de.Name(), ".wal") {
				continue // the segment etcd preallocates ahead of time
			}
			n := int64(-1)
			if sub == "wal" && i == len(names)-1 {
				n = limit
			}
			copyFile(t, filepath.Join(from, de.Name()), filepath.Join(to, de.Name()), n)
		}
	}
	return dst
}

func copyFile(t testing.TB, from, to string, limit int64) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var r io.Reader = in
	if limit >= 0 {
		r = io.LimitReader(in, limit)
	}
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, r); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// dirDigest lists the files under dir with their sizes and hashes.
func dirDigest(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(dir, path)
		out = append(out, fmt.Sprintf("%s %d %s", rel, len(b), hex.EncodeToString(sum[:8])))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameEntries(a, b []*raftpb.Entry) bool {
	return slices.EqualFunc(a, b, func(x, y *raftpb.Entry) bool { return proto.Equal(x, y) })
}

// describeEntries says how replayed entries differ from the written ones.
func describeEntries(got, want []*raftpb.Entry) string {
	for i := range want {
		switch {
		case i >= len(got):
			return fmt.Sprintf("%d of %d entries: the rest were cut off", len(got), len(want))
		case !proto.Equal(got[i], want[i]):
			return fmt.Sprintf("entry %d as %v instead of %v", want[i].GetIndex(), got[i], want[i])
		}
	}
	return fmt.Sprintf("all %d entries intact", len(want))
}

// TestOpenStorageRepairsTornTail cuts the WAL at every byte of its last entry
// record, as a crash in the middle of writing it would, and checks that the
// member starts: CheckDataDir accepts the dir, openStorage repairs it (a
// .broken copy is kept), every earlier entry and hard state is there, and the
// repaired WAL takes new writes that survive another restart.
func TestOpenStorageRepairsTornTail(t *testing.T) {
	lg := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	src := t.TempDir()
	const n = 6
	ents := writeTestWAL(t, lg, src, n)
	recs := entryFrames(waltest.Frames(t, walSegment(t, src)))
	last := recs[len(recs)-1]

	for cut := last.Off + 1; cut < last.End; cut++ {
		dir := copyDataDir(t, src, cut)
		if err := CheckDataDir(lg, dir, 1); err != nil {
			t.Fatalf("cut at %d: CheckDataDir: %v", cut, err)
		}
		s, ds, err := openStorage(lg, dir, 1, 0)
		if err != nil {
			t.Fatalf("cut at %d inside [%d, %d): %v", cut, last.Off, last.End, err)
		}
		if !sameEntries(ds.entries, ents[:n-1]) {
			t.Fatalf("cut at %d: entries %v, want the first %d", cut, ds.entries, n-1)
		}
		if !proto.Equal(ds.hardState, testHardState(n-1)) {
			t.Fatalf("cut at %d: hard state %v, want %v", cut, ds.hardState, testHardState(n-1))
		}
		if ds.clusterID != testClusterID || ds.fresh {
			t.Fatalf("cut at %d: cluster id %x, fresh %v", cut, ds.clusterID, ds.fresh)
		}
		broken, _ := filepath.Glob(filepath.Join(dir, "member", "wal", "*.wal.broken"))
		if len(broken) != 1 {
			t.Fatalf("cut at %d: want a .broken copy of the torn segment, found %v", cut, broken)
		}
		// The repaired WAL takes writes, and a restart reads them back
		// without another repair.
		again := testEntry(n)
		if err := s.wal.Save(testHardState(n), []*raftpb.Entry{again}); err != nil {
			t.Fatalf("cut at %d: write after repair: %v", cut, err)
		}
		if err := s.close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(broken[0]); err != nil {
			t.Fatal(err)
		}
		s, ds, err = openStorage(lg, dir, 1, 0)
		if err != nil {
			t.Fatalf("cut at %d: reopen after repair: %v", cut, err)
		}
		if !sameEntries(ds.entries, append(slices.Clone(ents[:n-1]), again)) {
			t.Fatalf("cut at %d: after repair and a write, entries %v", cut, ds.entries)
		}
		if b, _ := filepath.Glob(filepath.Join(dir, "member", "wal", "*.broken")); len(b) != 0 {
			t.Fatalf("cut at %d: the second start repaired again: %v", cut, b)
		}
		s.close()
	}
}

// TestOpenStorageRepairsTornSectors simulates the other shape of a torn
// write: the last write spans several disk sectors and only the first made
// it, so the segment (preallocated and zero-filled) holds a record whose
// length is written but whose later sectors are zeros. The member starts
// without that record and keeps everything before it.
func TestOpenStorageRepairsTornSectors(t *testing.T) {
	lg := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	dir := t.TempDir()
	ents := writeTestWAL(t, lg, dir, 4)
	s, _, err := openStorage(lg, dir, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	big := &raftpb.Entry{Term: proto.Uint64(1), Index: proto.Uint64(5), Type: raftpb.EntryNormal.Enum(),
		Data: bytes.Repeat([]byte("unacknowledged "), 200)} // about 3 KiB: several sectors
	if err := s.wal.Save(testHardState(4), []*raftpb.Entry{big}); err != nil {
		t.Fatal(err)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	path := walSegment(t, dir)
	recs := entryFrames(waltest.Frames(t, path))
	last := recs[len(recs)-1]
	// Zero every sector after the one holding the record's length field.
	firstLost := (last.Off/512 + 1) * 512
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, last.End-firstLost), firstLost); err != nil {
		t.Fatal(err)
	}
	f.Close()

	if err := CheckDataDir(lg, dir, 1); err != nil {
		t.Fatalf("CheckDataDir: %v", err)
	}
	s, ds, err := openStorage(lg, dir, 1, 0)
	if err != nil {
		t.Fatalf("open after a torn multi-sector write: %v", err)
	}
	defer s.close()
	if !sameEntries(ds.entries, ents) {
		t.Fatalf("entries %v, want the 4 acknowledged ones", ds.entries)
	}
}

// TestOpenStorageRefusesCorruptRecord damages a record in the middle of the
// WAL, one that was fsynced (and so may have been acknowledged) long before
// the end: the member must refuse to start, with an error that says the WAL
// is corrupt, rather than cut the WAL there and lose the records after it,
// and it must leave the data dir exactly as it was.
func TestOpenStorageRefusesCorruptRecord(t *testing.T) {
	lg := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	src := t.TempDir()
	ents := writeTestWAL(t, lg, src, 8)
	all := waltest.Frames(t, walSegment(t, src))
	recs := entryFrames(all)
	victim := recs[2] // entry 3 of 8
	// The hard state record just before entry 5: it commits entry 4.
	state := all[slices.IndexFunc(all, func(f waltest.Frame) bool { return f.End == recs[4].Off })]
	tests := []struct {
		name string
		off  int64 // the byte to change
		mask byte  // the bits to flip in it
		want error // what the error wraps; nil: any error
	}{
		{"entry data", victim.End - 4, 0x01, wal.ErrCRCMismatch},
		// The record starts with its type (2 bytes) and its CRC (a tag and
		// a 5-byte varint): change a bit of the CRC that keeps the varint
		// well formed.
		{"record crc field", victim.Off + 8 + 4, 0x01, wal.ErrCRCMismatch},
		// The record type is not covered by the CRC. An entry read as a
		// hard state leaves a gap that ReadAll notices; a hard state
		// (type 3) read as an entry (type 2) decodes as an entry whose
		// index is the commit index, and replaces the real entry there.
		{"record type, entry to state", victim.Off + 8 + 1, 0x01, nil},
		{"record type, state to entry", state.Off + 8 + 1, 0x01, nil},
		// The little-endian length field before the record. A low bit
		// reads a slightly wrong amount of data. A high bit (here bit 32)
		// claims a record larger than what is left of the segment, which
		// etcd's decoder reports as io.ErrUnexpectedEOF, the error of a
		// torn tail.
		{"length field, bit 0", victim.Off, 0x01, nil},
		{"length field, bit 32", victim.Off + 4, 0x01, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDataDir(t, src, -1)
			waltest.FlipBits(t, walSegment(t, dir), tt.off, tt.mask)
			before := dirDigest(t, dir)
			checkErr := CheckDataDir(lg, dir, 1)
			s, ds, err := openStorage(lg, dir, 1, 0)
			if err == nil {
				s.close()
				t.Errorf("openStorage started on a WAL with a corrupt record in the middle; it replayed %s", describeEntries(ds.entries, ents))
			} else if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("openStorage: %v, want an error wrapping %v", err, tt.want)
			}
			if err != nil {
				t.Logf("openStorage: %v", err)
			}
			if checkErr == nil {
				t.Errorf("CheckDataDir accepted a WAL with a corrupt record in the middle")
			}
			if after := dirDigest(t, dir); !slices.Equal(before, after) {
				t.Errorf("the data dir changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// TestOpenStorageFallsBackToOlderSnapshot corrupts the newest snapshot file:
// the member must start from the older snapshot, which the WAL also
// recorded, replay the WAL from there, and set the broken file aside as
// .broken (etcd's snapshotter does that) instead of deleting it.
func TestOpenStorageFallsBackToOlderSnapshot(t *testing.T) {
	lg := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	dir := t.TempDir()
	s, _, err := openStorage(lg, dir, 1, testClusterID)
	if err != nil {
		t.Fatal(err)
	}
	var ents []*raftpb.Entry
	cs := &raftpb.ConfState{Voters: []uint64{1}}
	for i := uint64(1); i <= 12; i++ {
		e := testEntry(i)
		ents = append(ents, e)
		if err := s.wal.Save(testHardState(i), []*raftpb.Entry{e}); err != nil {
			t.Fatal(err)
		}
		if i == 4 || i == 8 {
			md := &raftpb.SnapshotMetadata{Index: proto.Uint64(i), Term: proto.Uint64(1), ConfState: cs}
			if err := s.saveSnapshot(md, fmt.Appendf(nil, "state at %d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "member", "snap", "*.snap"))
	if len(snaps) != 2 {
		t.Fatalf("want two snapshot files, found %v", snaps)
	}
	slices.Sort(snaps)
	newest := snaps[1]
	fi, err := os.Stat(newest)
	if err != nil {
		t.Fatal(err)
	}
	waltest.FlipBits(t, newest, fi.Size()/2, 0x01)
	corrupt, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}

	s, ds, err := openStorage(lg, dir, 1, 0)
	if err != nil {
		t.Fatalf("open with a corrupt newest snapshot: %v", err)
	}
	defer s.close()
	if ds.snapshot == nil || ds.snapshot.GetMetadata().GetIndex() != 4 || string(ds.snapshot.GetData()) != "state at 4" {
		t.Fatalf("loaded snapshot %v, want the one at index 4", ds.snapshot.GetMetadata())
	}
	if !sameEntries(ds.entries, ents[4:]) {
		t.Fatalf("replayed entries %v, want 5..12", ds.entries)
	}
	if _, err := os.Stat(newest); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the corrupt snapshot is still a .snap file (stat: %v)", err)
	}
	kept, err := os.ReadFile(newest + ".broken")
	if err != nil || !bytes.Equal(kept, corrupt) {
		t.Errorf("the corrupt snapshot was not set aside unchanged as .broken: %v", err)
	}
}

// TestCheckDataDir checks the refusals that happen before anything is
// opened for writing (the command runs CheckDataDir first; see also the
// end-to-end TestServeRejectsOtherMembersDataDir).
func TestCheckDataDir(t *testing.T) {
	lg := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	dir := t.TempDir()
	writeTestWAL(t, lg, dir, 2)
	if err := CheckDataDir(lg, dir, 1); err != nil {
		t.Errorf("member 1 on its own dir: %v", err)
	}
	if err := CheckDataDir(lg, filepath.Join(t.TempDir(), "absent"), 1); err != nil {
		t.Errorf("absent dir: %v", err)
	}
	before := dirDigest(t, dir)
	if err := CheckDataDir(lg, dir, 2); !errors.Is(err, ErrIDMismatch) || !strings.Contains(err.Error(), "holds member 1's data, not member 2's") {
		t.Errorf("member 2 on member 1's dir: %v, want ErrIDMismatch naming member 1", err)
	}
	if _, _, err := openStorage(lg, dir, 2, 0); !errors.Is(err, ErrIDMismatch) {
		t.Errorf("openStorage for member 2 on member 1's dir: %v, want ErrIDMismatch", err)
	}
	if after := dirDigest(t, dir); !slices.Equal(before, after) {
		t.Errorf("refusing the dir changed it:\nbefore %v\nafter  %v", before, after)
	}
	if err := os.WriteFile(filepath.Join(dir, "member", removedMarker), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckDataDir(lg, dir, 1); !errors.Is(err, ErrRemoved) {
		t.Errorf("removed member's dir: %v, want ErrRemoved", err)
	}
}
