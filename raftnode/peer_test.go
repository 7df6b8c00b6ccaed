package raftnode_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/version"
	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/raftkv/raftkv/internal/testcerts"
	"github.com/raftkv/raftkv/internal/testcluster"
	"github.com/raftkv/raftkv/kvstore"
	"github.com/raftkv/raftkv/listener"
	"github.com/raftkv/raftkv/raftnode"
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

// TestPeerPortRefusesStrangers sends what anyone who reaches the peer port
// can send: a heartbeat at a higher term from a made-up id (it deposed the
// leader every time), a forged put from a made-up id, a message addressed
// to another member, and a stream opened for a made-up id. Each is refused
// before raft sees it: the leader keeps its term, nothing is applied.
func TestPeerPortRefusesStrangers(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	leader := c.WaitLeader()
	to := follower(c, leader)
	settle(t, c, leader, "before")
	cid := c.Node(leader).ClusterID()
	term := c.Node(leader).Term()
	const stranger = 99

	heartbeat := &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: proto.Uint64(stranger), To: proto.Uint64(leader), Term: proto.Uint64(term + 1)}
	if got := postRaft(t, c.HTTPClient(), c.PeerURL(leader), cid, stranger, heartbeat); got != http.StatusNotFound {
		t.Errorf("heartbeat from a stranger: status %d, want 404", got)
	}
	// The same message with a member's id in the header: refused by raftkv's
	// check of the message itself.
	member := follower(c, leader)
	if got := postRaft(t, c.HTTPClient(), c.PeerURL(leader), cid, member, heartbeat); got != http.StatusNotFound {
		t.Errorf("heartbeat from a stranger under a member's header: status %d, want 404", got)
	}
	if got := postRaft(t, c.HTTPClient(), c.PeerURL(to), cid, stranger, forgedAppend(c, stranger, to, "forged")); got != http.StatusNotFound {
		t.Errorf("append from a stranger: status %d, want 404", got)
	}
	misaddressed := forgedAppend(c, leader, to, "misaddressed")
	misaddressed.To = proto.Uint64(7)
	if got := postRaft(t, c.HTTPClient(), c.PeerURL(to), cid, leader, misaddressed); got != http.StatusPreconditionFailed {
		t.Errorf("append addressed to member 7: status %d, want 412", got)
	}
	req, err := http.NewRequest(http.MethodGet, c.PeerURL(leader)+"/raft/stream/message/"+types.ID(stranger).String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	setRaftHeaders(req, cid, stranger)
	req.Header.Set("X-Raft-To", types.ID(leader).String())
	req.Header.Set("X-PeerURLs", "http://127.0.0.1:1")
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("X-Etcd-Cluster-ID") != "" {
		t.Errorf("stream for a stranger: status %d, cluster id header %q; want 404 without it", resp.StatusCode, resp.Header.Get("X-Etcd-Cluster-ID"))
	}

	// A write after the messages commits in the same term under the same
	// leader, and everything it committed holds no forged key.
	rev, err := c.PutRetry(leader, "after", "v")
	if err != nil {
		t.Fatal(err)
	}
	c.WaitApplied(rev)
	if got := c.Node(leader).Term(); got != term || c.WaitLeader() != leader {
		t.Errorf("leader %d at term %d after the messages, want %d at term %d", c.WaitLeader(), got, leader, term)
	}
	for _, id := range c.Running() {
		for _, key := range []string{"forged", "misaddressed"} {
			if v, err := c.Get(id, key, testcluster.Serializable); err == nil {
				t.Errorf("member %d applied the forged %s: %q", id, key, v)
			}
		}
	}
}

// postSnapshot sends a snapshot the way rafthttp's snapshot sender does:
// POST /raft/snapshot, the length-prefixed MsgSnap, then size bytes of
// data. It returns the answer's status.
func postSnapshot(t *testing.T, c *testcluster.Cluster, sender, to uint64, size int64) int {
	t.Helper()
	st := c.Node(to).Status()
	m := &raftpb.Message{
		Type: raftpb.MsgSnap.Enum(), From: proto.Uint64(sender), To: proto.Uint64(to), Term: proto.Uint64(st.Term),
		Snapshot: &raftpb.Snapshot{
			Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(st.Commit + 1000), Term: proto.Uint64(st.Term), ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}},
			Data:     raftnode.StreamedSnapshotHeader(c.Node(to).Members()),
		},
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	head := binary.BigEndian.AppendUint64(nil, uint64(len(b)))
	body := io.MultiReader(bytes.NewReader(append(head, b...)), io.LimitReader(zeros{}, size))
	req, err := http.NewRequest(http.MethodPost, c.PeerURL(to)+"/raft/snapshot", body)
	if err != nil {
		t.Fatal(err)
	}
	setRaftHeaders(req, c.Node(to).ClusterID(), sender)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		// The server may answer and close before it read the whole body.
		t.Logf("POST /raft/snapshot: %v", err)
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// snapDirLeftovers lists what a received snapshot leaves in member id's
// snap dir: data files and rafthttp's temporary files.
func snapDirLeftovers(t *testing.T, c *testcluster.Cluster, id uint64) []string {
	t.Helper()
	dir := filepath.Join(c.DataDir(id), "member", "snap")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".snap.db") || strings.HasPrefix(e.Name(), "tmp") {
			left = append(left, e.Name())
		}
	}
	return left
}

// TestSnapshotOnlyFromLeaderAndBounded sends a follower snapshots that are
// not the leader's to send: from a stranger, from another follower, and
// from the leader's id with more data than --max-snapshot-bytes. Each is
// refused and leaves no file behind (a probe wrote 600 MB of .snap.db files
// in a second, kept until a restart); the cluster still works.
func TestSnapshotOnlyFromLeaderAndBounded(t *testing.T) {
	const limit = 1 << 20
	c := testcluster.New(t, testcluster.Config{Size: 3, MaxSnapshotBytes: limit})
	leader := c.WaitLeader()
	to := follower(c, leader)
	other := 6 - leader - to
	settle(t, c, leader, "before")

	for _, tc := range []struct {
		name   string
		sender uint64
		size   int64
		want   int
	}{
		{"stranger", 99, limit, http.StatusNotFound},
		{"another follower", other, limit, http.StatusConflict},
		{"the leader, too large", leader, 4 * limit, http.StatusRequestEntityTooLarge},
	} {
		if got := postSnapshot(t, c, tc.sender, to, tc.size); got != tc.want && got != 0 {
			t.Errorf("snapshot from %s: status %d, want %d", tc.name, got, tc.want)
		}
		if left := snapDirLeftovers(t, c, to); len(left) > 0 {
			t.Errorf("snapshot from %s left %v", tc.name, left)
		}
	}
	rev, err := c.PutRetry(leader, "after", "v")
	if err != nil {
		t.Fatal(err)
	}
	c.WaitApplied(rev)
}

// TestPeerCertAllowedCN runs a cluster whose peers must present a
// certificate with common name "node" (--peer-cert-allowed-cn): it elects
// a leader and replicates, while a client certificate the same CA signed
// (an operator's, common name "client") cannot even complete a handshake
// on the peer port, so it cannot send the forged append that a bare
// --peer-client-cert-auth would let through.
func TestPeerCertAllowedCN(t *testing.T) {
	certs := testcerts.New(t)
	c := testcluster.New(t, testcluster.Config{Size: 3, TLS: certs, PeerAllowedCNs: []string{"node"}})
	leader := c.WaitLeader()
	to := follower(c, leader)
	settle(t, c, leader, "before")

	dial := func(certFile, keyFile string) *http.Client {
		cfg, err := listener.TLSFiles{CertFile: certFile, KeyFile: keyFile, TrustedCAFile: certs.CAFile}.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	}
	body, err := proto.Marshal(forgedAppend(c, leader, to, "forged"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, c.PeerURL(to)+"/raft", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	setRaftHeaders(req, c.Node(to).ClusterID(), leader)
	resp, err := dial(certs.ClientCert, certs.ClientKey).Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a certificate with common name \"client\" reached the peer port: status %d", resp.StatusCode)
	}
	t.Logf("refused: %v", err)

	rev, err := c.PutRetry(leader, "after", "v")
	if err != nil {
		t.Fatal(err)
	}
	c.WaitApplied(rev)
	for _, id := range c.Running() {
		if v, err := c.Get(id, "forged", testcluster.Serializable); err == nil {
			t.Errorf("member %d applied the forged put: %q", id, v)
		}
	}
}
