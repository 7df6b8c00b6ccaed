//go:build unix

package robustness

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/internal/proctest"
)

// joinTimeout is how long a new member may take to catch up with a cluster
// that holds a few hundred keys.
const joinTimeout = 10 * time.Second

// TestMemberJoinsAfterCompaction is the deterministic form of what the
// replace-member histories found: a member added once the leader has
// compacted its log needs a snapshot, and the leader's newest one predates
// the addition. Nothing is written after the addition. The new member must
// catch up all the same.
func TestMemberJoinsAfterCompaction(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of raftkv processes")
	}
	for _, learner := range []bool{false, true} {
		name := "voter"
		if learner {
			name = "learner"
		}
		t.Run(name, func(t *testing.T) { testMemberJoinsAfterCompaction(t, learner) })
	}
}

func testMemberJoinsAfterCompaction(t *testing.T, learner bool) {
	ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
	defer cancel()
	c, logf := startTestCluster(ctx, t)
	leader, err := c.leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	api := c.api(leader.clientURL())
	for i := range snapshotCount + snapshotCount/2 {
		rctx, cancel := context.WithTimeout(ctx, opTimeout)
		_, err := api.Put(rctx, []byte("key"+strconv.Itoa(i)), []byte("value"), client.Condition{})
		cancel()
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	// The leader writes its snapshot in the background.
	var before client.Status
	err = poll(ctx, readyTimeout, func() error {
		if before, err = c.status(ctx, leader); err != nil || before.SnapshotIndex == 0 {
			return fmt.Errorf("the leader has not taken a snapshot: %+v %v", before, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	logf("leader %s: applied %d, snapshot %d", leader.name(), before.AppliedIndex, before.SnapshotIndex)

	ports, err := proctest.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	nn := &node{
		slot:       clusterSize,
		peerURL:    "http://127.0.0.1:" + strconv.Itoa(ports[0]),
		peerAddr:   "127.0.0.1:" + strconv.Itoa(ports[1]),
		clientPort: ports[2],
		dataDir:    filepath.Join(c.dir, "data-new"),
	}
	// A learner is promoted only once it has caught up, so add returns
	// late for one: watch the node from the moment it serves.
	addCtx, cancelAdd := context.WithCancel(ctx)
	defer cancelAdd()
	started, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- c.add(addCtx, leader, nn, learner, func() {
			c.slots = append(c.slots, nn)
			close(started)
		})
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatal(err)
	}
	var target uint64
	err = poll(ctx, joinTimeout, func() error {
		st, err := c.status(ctx, leader)
		if err != nil {
			return err
		}
		target = st.AppliedIndex
		nst, err := c.status(ctx, nn)
		if err != nil {
			return err
		}
		if nst.AppliedIndex < target {
			return fmt.Errorf("%s has applied %d of the leader's %d", nn.name(), nst.AppliedIndex, target)
		}
		return nil
	})
	if err != nil {
		log := tail(nn.logPath, 1<<20)
		t.Errorf("a member added after the leader's snapshot at %d did not catch up within %v: %v\n"+
			"its log says %d times: %s\nthe leader sent it %d snapshots (all at its newest index, which predates the addition)",
			before.SnapshotIndex, joinTimeout, err, strings.Count(log, "should never happen"), firstLineWith(log, "should never happen"),
			strings.Count(tail(leader.logPath, 8<<20), "sending database snapshot"))
		cancelAdd()
		<-done
		return
	}
	logf("%s caught up to %d", nn.name(), target)
	if err := <-done; err != nil {
		t.Error(err)
	}
}
