package raftnode_test

import (
	"fmt"
	"testing"

	"github.com/raftkv/raftkv/internal/testcluster"
)

// TestJoinerStopsDialingRemovedMembers: a member that joins with a fresh
// data dir dials every URL of its cluster list, some of them members removed
// before it joined. When it catches up by snapshot, the snapshot's member
// table is the first it hears of the removal, and it must stop dialing them
// (the force-new-cluster drill grows a cluster back exactly this way).
func TestJoinerStopsDialingRemovedMembers(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3, SnapshotCount: 10, SnapshotCatchUpEntries: 5})
	leader := c.WaitLeader()
	gone := uint64(3)
	if gone == leader {
		gone = 2
	}
	c.RemoveMember(leader, gone)
	c.WaitStopped(gone)
	var last uint64
	for i := range 30 {
		rev, err := c.PutRetry(leader, fmt.Sprintf("k%d", i), "v")
		if err != nil {
			t.Fatal(err)
		}
		last = rev
	}
	id := c.AddMember(leader)
	c.StartJoining(id)
	c.WaitApplied(last, id)
	if c.Node(id).Status().Snapshot == 0 {
		t.Fatalf("member %d caught up without a snapshot; the test needs one", id)
	}
	c.WaitFor(fmt.Sprintf("member %d to stop dialing removed member %d", id, gone), func() error {
		if c.Node(id).Dials(gone) {
			return fmt.Errorf("member %d still dials removed member %d", id, gone)
		}
		return nil
	})
	for _, m := range c.Running() {
		if m != id && !c.Node(id).Dials(m) {
			t.Fatalf("member %d does not dial member %d", id, m)
		}
	}
}
