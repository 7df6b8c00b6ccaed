package raftnode_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/internal/testcluster"
	"github.com/raftkv/raftkv/internal/waltest"
	"github.com/raftkv/raftkv/kvstore"
	"github.com/raftkv/raftkv/raftnode"
)

// copyTree copies the files under src into a new directory.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func globOne(t *testing.T, pattern string) []string {
	t.Helper()
	names, err := filepath.Glob(pattern)
	if err != nil || len(names) == 0 {
		t.Fatalf("nothing matches %s (%v)", pattern, err)
	}
	slices.Sort(names)
	return names
}

// TestInspectDataDir inspects the data dir of a real member, stopped after
// 25 writes with a snapshot every 10 entries: healthy, it reports the state
// the member had (the same store hash) and no damage, and leaves every byte
// and modification time as it was; with one byte flipped in a WAL entry
// record, or in the newest snapshot file, it reports that file, and for the
// WAL the offset of the damaged frame.
func TestInspectDataDir(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 1, SnapshotCount: 10})
	c.WaitLeader()
	const writes = 25
	for i := range writes {
		if _, err := c.PutRetry(1, fmt.Sprintf("key-%02d", i), fmt.Sprintf("value-%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	wantHash, wantRev := c.Server(1).KV().Store().Hash()
	if err := c.Stop(1); err != nil {
		t.Fatal(err)
	}
	dir := c.DataDir(1)

	t.Run("healthy", func(t *testing.T) {
		before := waltest.DirState(t, dir)
		r, err := raftnode.InspectDataDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Damage) != 0 {
			t.Errorf("damage in a healthy dir: %v", r.Damage)
		}
		if r.MemberID != 1 || r.SnapshotIndex == 0 || r.Commit < r.SnapshotIndex || r.LastIndex < r.Commit {
			t.Errorf("member %d, snapshot %d, commit %d, last %d: want member 1 and 0 < snapshot <= commit <= last",
				r.MemberID, r.SnapshotIndex, r.Commit, r.LastIndex)
		}
		if len(r.Members) != 1 || r.Members[0].ID != 1 || !r.Members[0].Started() || r.Removed {
			t.Errorf("members %+v (removed %v), want member 1, started", r.Members, r.Removed)
		}
		s, skipped, err := kvstore.Rebuild(r.StoreSnapshot, r.Committed)
		if err != nil || len(skipped) > 0 {
			t.Fatalf("rebuild the store: %v (skipped %v)", err, skipped)
		}
		if hash, rev := s.Hash(); hash != wantHash || rev != wantRev || s.Len() != writes {
			t.Errorf("rebuilt store: %d keys, hash %s at %d; the member had %d keys, hash %s at %d", s.Len(), hash, rev, writes, wantHash, wantRev)
		}
		if after := waltest.DirState(t, dir); !slices.Equal(before, after) {
			t.Errorf("inspecting changed the dir:\nbefore %v\nafter  %v", before, after)
		}
	})

	t.Run("flipped WAL byte", func(t *testing.T) {
		cp := copyTree(t, dir)
		segs := globOne(t, filepath.Join(cp, "member", "wal", "*.wal"))
		seg := segs[len(segs)-1]
		var damaged waltest.Frame
		for _, f := range waltest.Frames(t, seg) {
			if f.Entry != nil && bytes.Contains(f.Entry.GetData(), []byte("key-20")) {
				damaged = f
			}
		}
		if damaged.End == 0 {
			t.Fatal("no WAL record holds key-20")
		}
		// The record's last byte is the entry's, the value's last byte.
		waltest.FlipBits(t, seg, damaged.DataEnd-1, 0x01)
		r, err := raftnode.InspectDataDir(cp)
		if err != nil {
			t.Fatal(err)
		}
		want := raftnode.Finding{File: seg, Offset: damaged.Off}
		if len(r.Damage) != 1 || r.Damage[0].File != want.File || r.Damage[0].Offset != want.Offset || !strings.Contains(r.Damage[0].What, "CRC mismatch") {
			t.Errorf("damage %v, want one CRC mismatch at %s", r.Damage, want)
		}
	})

	t.Run("flipped snapshot byte", func(t *testing.T) {
		cp := copyTree(t, dir)
		snaps := globOne(t, filepath.Join(cp, "member", "snap", "*.snap"))
		newest := snaps[len(snaps)-1]
		fi, err := os.Stat(newest)
		if err != nil {
			t.Fatal(err)
		}
		waltest.FlipBits(t, newest, fi.Size()/2, 0x01)
		r, err := raftnode.InspectDataDir(cp)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Damage) != 1 || r.Damage[0].File != newest || r.Damage[0].Offset < 0 || r.Damage[0].Offset > fi.Size()/2 {
			t.Errorf("damage %v, want one finding in %s at or before offset %d", r.Damage, newest, fi.Size()/2)
		}
		t.Logf("reported: %v", r.Damage)
	})
}
