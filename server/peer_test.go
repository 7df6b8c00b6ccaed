package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/version"
	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/raftkv/raftkv/internal/testcluster"
	"github.com/raftkv/raftkv/kvstore"
)

// postRaft sends m to the peer port at peerURL the way rafthttp's pipeline
// does (POST /raft, the message as protobuf, rafthttp's headers), claiming
// to be sender, and returns the answer's status.
func postRaft(t *testing.T, client *http.Client, peerURL string, clusterID, sender uint64, m *raftpb.Message) int {
	t.Helper()
	body, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, peerURL+"/raft", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	setRaftHeaders(req, clusterID, sender)
	req.Header.Set("Content-Type", "application/protobuf")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s/raft: %v", peerURL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// setRaftHeaders sets the headers rafthttp's senders set.
func setRaftHeaders(req *http.Request, clusterID, sender uint64) {
	req.Header.Set("X-Server-From", types.ID(sender).String())
	req.Header.Set("X-Server-Version", version.Version)
	req.Header.Set("X-Min-Cluster-Version", version.MinClusterVersion)
	req.Header.Set("X-Etcd-Cluster-ID", types.ID(clusterID).String())
}

// forgedAppend is a MsgApp "from" sender to the follower to, at the
// follower's term, that appends a put of key right after the follower's
// last entry and commits it: what any caller of an unauthenticated peer
// port can build from the follower's status.
func forgedAppend(c *testcluster.Cluster, sender, to uint64, key string) *raftpb.Message {
	st := c.Node(to).Status()
	cmd := kvstore.Command{Origin: 99, ID: 1, Op: kvstore.OpPut, Key: []byte(key), Value: []byte("forged")}
	return &raftpb.Message{
		Type:    raftpb.MsgApp.Enum(),
		From:    proto.Uint64(sender),
		To:      proto.Uint64(to),
		Term:    proto.Uint64(st.Term),
		Index:   proto.Uint64(st.Commit),
		LogTerm: proto.Uint64(st.Term),
		Commit:  proto.Uint64(st.Commit + 1),
		Entries: []*raftpb.Entry{{
			Type:  raftpb.EntryNormal.Enum(),
			Term:  proto.Uint64(st.Term),
			Index: proto.Uint64(st.Commit + 1),
			Data:  cmd.Marshal(),
		}},
	}
}

// follower returns a running member other than leader.
func follower(c *testcluster.Cluster, leader uint64) uint64 {
	for _, id := range c.Running() {
		if id != leader {
			return id
		}
	}
	return 0
}

// settle writes key and waits until every member knows the leader's commit
// index committed and applied, so that each member's last index is its
// commit index (a follower learns the commit index with the next message).
func settle(t *testing.T, c *testcluster.Cluster, leader uint64, key string) {
	t.Helper()
	if _, err := c.PutRetry(leader, key, "v"); err != nil {
		t.Fatal(err)
	}
	c.WaitFor("every member at the leader's commit index", func() error {
		commit := c.Node(leader).Status().Commit
		for _, id := range c.Running() {
			if st := c.Node(id).Status(); st.Commit != commit || st.Applied != commit {
				return fmt.Errorf("member %d: commit %d, applied %d; leader's commit %d", id, st.Commit, st.Applied, commit)
			}
		}
		return nil
	})
}

// TestForgedAppendFromLeaderKeepsLeaderAlive sends a follower what an
// adversarial probe sent: a MsgApp claiming to come from the leader that
// appends and commits a put the leader never proposed. Without peer
// authentication the follower cannot tell it from the leader's own (see
// docs/SECURITY.md), so it takes it and tells the leader it holds an entry
// past the leader's log. Raft then asks its storage for a snapshot to send,
// and an empty one made the leader panic ("need non-empty snapshot"),
// losing the writes in flight. The leader must stay up and keep every
// write it acknowledged.
func TestForgedAppendFromLeaderKeepsLeaderAlive(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	leader := c.WaitLeader()
	to := follower(c, leader)
	settle(t, c, leader, "before")

	status := postRaft(t, c.HTTPClient(), c.PeerURL(to), c.Node(to).ClusterID(), leader, forgedAppend(c, leader, to, "forged"))
	t.Logf("forged MsgApp from the leader's id: status %d", status)

	// The follower's answer reaches the leader at once; writes that follow
	// go through raft's handling of it.
	var acked []string
	for i := range 20 {
		key := fmt.Sprintf("after-%d", i)
		if _, err := c.PutRetry(leader, key, "v"); err != nil {
			t.Fatalf("write after the forged message: %v", err)
		}
		acked = append(acked, key)
	}
	now := c.WaitLeader()
	if now != leader {
		t.Logf("leadership moved from %d to %d", leader, now)
	}
	for _, key := range append([]string{"before"}, acked...) {
		if v, err := c.Get(now, key, testcluster.Linearizable); err != nil || v != "v" {
			t.Fatalf("acknowledged write %s: got %q, %v", key, v, err)
		}
	}
}
