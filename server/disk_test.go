package server_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/internal/testcluster"
	"github.com/raftkv/raftkv/raftnode"
)

// TestRemovedWALDirStopsFollower removes a follower's WAL directory while it
// runs, as rm -rf would, with the third member stopped so that the leader
// needs that follower for a quorum. The follower's WAL file stays open and
// its fsyncs succeed on a file no path reaches; it must not acknowledge the
// next write but stop, saying why (docs/SECURITY.md, "Disk failures").
func TestRemovedWALDirStopsFollower(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3, RequestTimeout: time.Second})
	leader := c.WaitLeader()
	follower := otherThan(c, leader)
	third := 6 - leader - follower
	if err := c.Stop(third); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutRetry(leader, "before", "v"); err != nil {
		t.Fatal(err)
	}
	node := c.Node(follower)
	if err := os.RemoveAll(filepath.Join(c.DataDir(follower), "member", "wal")); err != nil {
		t.Fatal(err)
	}

	_, err := c.Put(leader, "after", "v")
	var httpErr *testcluster.HTTPError
	if !errors.As(err, &httpErr) || httpErr.Status != 504 {
		t.Fatalf("a write with the follower's WAL dir gone: %v, want 504 (not committed, outcome unknown)", err)
	}
	if err := c.WaitStopped(follower); !errors.Is(err, raftnode.ErrWALDirGone) {
		t.Fatalf("the follower stopped with %v, want ErrWALDirGone", err)
	}
	if f := node.Fault(); !strings.Contains(f, "the wal directory was removed") {
		t.Fatalf("Fault() = %q, want why it stopped", f)
	}
	// Nothing was acknowledged: the leader has not committed the write.
	if v, err := c.Get(leader, "after", testcluster.Serializable); err == nil {
		t.Fatalf("the leader applied the write (%q) with its only follower's WAL gone", v)
	}
}
