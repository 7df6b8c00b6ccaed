package raftnode

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.uber.org/zap/zaptest"
)

// TestSweepWALTmpKeepsTheWALsOwn opens a real data dir, whose WAL
// preallocates its next segment as a locked .tmp file, and leaves beside it
// the empty .tmp file a preallocation that ran out of space leaves behind.
// Opening the data dir again, and closing it, remove the leftover; the file
// the open WAL holds stays while it is open.
func TestSweepWALTmpKeepsTheWALsOwn(t *testing.T) {
	lg := zaptest.NewLogger(t)
	dir := t.TempDir()
	st, _, err := openStorage(lg, dir, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	walDir := st.walDir
	pending := filepath.Join(walDir, "0.tmp")
	waitLocked(t, pending)
	leftover := filepath.Join(walDir, "1.tmp")
	if err := os.WriteFile(leftover, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sweepWALTmp(lg, walDir)
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Fatalf("the leftover %s: %v, want it removed", leftover, err)
	}
	if _, err := os.Stat(pending); err != nil {
		t.Fatalf("the open WAL's %s: %v, want it kept", pending, err)
	}
	if err := st.close(); err != nil {
		t.Fatal(err)
	}

	// An empty .tmp left by a failed preallocation is gone after a start
	// and a stop.
	if err := os.WriteFile(leftover, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	st, _, err = openStorage(lg, dir, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.close(); err != nil {
		t.Fatal(err)
	}
	names, err := os.ReadDir(walDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range names {
		if filepath.Ext(e.Name()) == ".tmp" {
			t.Errorf("%s is left in the wal dir after a stop", e.Name())
		}
	}
}

// waitLocked waits for the WAL to hold the lock on path. The WAL
// preallocates in the background, and it creates the file a moment before it
// locks it: a file that merely exists may still be unlocked.
func waitLocked(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := fileutil.TryLockFile(path, os.O_WRONLY, fileutil.PrivateFileMode)
		if errors.Is(err, fileutil.ErrLocked) {
			return
		}
		if err == nil {
			l.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never held by the WAL: %v", path, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSnapshotRetriesBackOff checks the pause before a snapshot is sent
// again to a member whose transfers failed: 1 s, doubling to a minute, per
// member, and over after a transfer succeeds.
func TestSnapshotRetriesBackOff(t *testing.T) {
	var r snapshotRetries
	now := time.Unix(1000, 0)
	if w := r.waitFor(2, now); w != 0 {
		t.Fatalf("no failure yet: wait %v", w)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute}
	for i, w := range want {
		got, failures := r.report(2, true, now)
		if got != w || failures != i+1 {
			t.Fatalf("failure %d: pause %v (count %d), want %v", i+1, got, failures, w)
		}
		if left := r.waitFor(2, now.Add(w-time.Millisecond)); left != time.Millisecond {
			t.Fatalf("failure %d: %v left just before the pause ends, want 1ms", i+1, left)
		}
		if left := r.waitFor(2, now.Add(w)); left != 0 {
			t.Fatalf("failure %d: %v left when the pause ends", i+1, left)
		}
		if left := r.waitFor(3, now); left != 0 {
			t.Fatalf("member 3 waits %v for member 2's failures", left)
		}
	}
	if w, _ := r.report(2, false, now); w != 0 || r.waitFor(2, now) != 0 {
		t.Fatalf("after a success: pause %v, wait %v", w, r.waitFor(2, now))
	}
	if w, failures := r.report(2, true, now); w != time.Second || failures != 1 {
		t.Fatalf("the first failure after a success: pause %v (count %d), want 1s", w, failures)
	}
}
