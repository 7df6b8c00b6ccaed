package raftnode

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	"github.com/raftkv/raftkv/listener"
)

// These tests start a Node on a data dir written by hand: the log that
// member 1 of a three-member cluster holds when the other two are lost for
// good, with entries past its commit index that no quorum acknowledged.

const forceWait = 10 * time.Second

// confEntry is a configuration change entry as raft writes it.
func confEntry(index uint64, typ raftpb.ConfChangeType, id uint64, peerURL string) *raftpb.Entry {
	cc := &raftpb.ConfChange{Type: typ.Enum(), NodeId: proto.Uint64(id), Context: encodeContext([]string{peerURL})}
	data, err := proto.Marshal(cc)
	if err != nil {
		panic(err) // a ConfChange always encodes
	}
	return &raftpb.Entry{Term: proto.Uint64(1), Index: proto.Uint64(index), Type: raftpb.EntryConfChange.Enum(), Data: data}
}

// writeLostClusterWAL writes member 1's data dir in dir: the configuration
// entries confs (indexes 1..len(confs)), then n commands "cmd-<index>", the
// first commit of them committed.
func writeLostClusterWAL(t *testing.T, lg *zap.Logger, dir string, confs []*raftpb.Entry, n, commit int) {
	t.Helper()
	s, _, err := openStorage(lg, dir, 1, testClusterID)
	if err != nil {
		t.Fatal(err)
	}
	ents := slices.Clone(confs)
	for i := range n {
		index := uint64(len(confs) + i + 1)
		ents = append(ents, &raftpb.Entry{Term: proto.Uint64(1), Index: proto.Uint64(index), Type: raftpb.EntryNormal.Enum(),
			Data: fmt.Appendf(nil, "cmd-%d", index)})
	}
	hs := &raftpb.HardState{Term: proto.Uint64(1), Vote: proto.Uint64(2), Commit: proto.Uint64(uint64(len(confs) + commit))}
	if err := s.wal.Save(hs, ents); err != nil {
		t.Fatal(err)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
}

// nopMachine is a state machine whose snapshots are empty.
type nopMachine struct{}

func (nopMachine) Capture() func(io.Writer) error { return func(io.Writer) error { return nil } }

// applied collects what a Node commits.
type applied struct {
	mu   sync.Mutex
	data []string
	last uint64
	done chan struct{}
}

func (a *applied) consume(commits <-chan Commit) {
	defer close(a.done)
	for c := range commits {
		a.mu.Lock()
		for _, e := range c.Entries {
			a.data = append(a.data, string(e.Data))
		}
		a.last = c.Index
		a.mu.Unlock()
		close(c.Done)
	}
}

func (a *applied) snapshot() ([]string, uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.data), a.last
}

// startTestNode starts member 1 on dir, listening on peerAddr, with peers
// as its cluster list. The node is stopped when the test ends.
func startTestNode(t *testing.T, dir, peerAddr string, peers []string, force bool) (*Node, *applied, error) {
	t.Helper()
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(3 * time.Second); ; {
		// The previous node released the address; the kernel may take a
		// moment.
		if ln, err = listener.New(peerAddr, nil); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ID = 1
	cfg.Peers = peers
	cfg.DataDir = dir
	cfg.PeerListener = ln
	cfg.StateMachine = nopMachine{}
	cfg.Logger = zaptest.NewLogger(t)
	cfg.TickInterval = 20 * time.Millisecond
	cfg.ForceNewCluster = force
	n, err := Start(cfg)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	a := &applied{done: make(chan struct{})}
	go a.consume(n.CommitC())
	t.Cleanup(func() {
		n.Stop()
		<-a.done
	})
	return n, a, nil
}

// waitFor polls cond until it returns nil, or fails the test.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(forceWait)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// proposeAndWait proposes data and waits until it is applied.
func proposeAndWait(t *testing.T, n *Node, a *applied, data string) {
	t.Helper()
	res := make(chan error, 1)
	n.ProposeC() <- Proposal{Data: []byte(data), Result: res}
	if err := <-res; err != nil {
		t.Fatalf("propose %s: %v", data, err)
	}
	waitFor(t, "apply "+data, func() error {
		if got, _ := a.snapshot(); !slices.Contains(got, data) {
			return fmt.Errorf("applied %v", got)
		}
		return nil
	})
}

// soleLeader waits until n is the only member and leads.
func soleLeader(t *testing.T, n *Node) {
	t.Helper()
	waitFor(t, "sole leader", func() error {
		ms := n.Members()
		if len(ms) != 1 || ms[0].ID != 1 || ms[0].IsLearner || n.Leader() != 1 {
			return fmt.Errorf("members %+v, leader %d", ms, n.Leader())
		}
		return nil
	})
}

// TestForceNewClusterKeepsCommittedEntries: member 1 of a lost three-member
// cluster restarts alone. It applies the five committed commands and not the
// two past the commit index, lists itself alone, refuses the removed
// members, leads, and commits new commands after the old ones; restarted
// without the flag it is still a one-member cluster with the same log, and
// with the flag again nothing changes.
func TestForceNewClusterKeepsCommittedEntries(t *testing.T) {
	lg := zaptest.NewLogger(t)
	dir := t.TempDir()
	self := closedURL(t)
	peers := []string{self, closedURL(t), closedURL(t)}
	confs := []*raftpb.Entry{
		confEntry(1, raftpb.ConfChangeAddNode, 1, peers[0]),
		confEntry(2, raftpb.ConfChangeAddNode, 2, peers[1]),
		confEntry(3, raftpb.ConfChangeAddNode, 3, peers[2]),
	}
	writeLostClusterWAL(t, lg, dir, confs, 7, 5)
	want := []string{"cmd-4", "cmd-5", "cmd-6", "cmd-7", "cmd-8"}
	peerAddr := self[len("http://"):]

	n, a, err := startTestNode(t, dir, peerAddr, peers, true)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	soleLeader(t, n)
	t.Logf("leader %v after the start", time.Since(start))
	if err := n.checkSender(2); !errors.As(err, new(errFromRemovedMember)) {
		t.Fatalf("the peer guard answers removed member 2 with %v, want the removed member's refusal", err)
	}
	// Index 8 is the last kept command, 9 and 10 the removals of 2 and 3.
	waitFor(t, "apply the removals", func() error {
		if _, last := a.snapshot(); last < 10 {
			return fmt.Errorf("applied index %d", last)
		}
		return nil
	})
	if got, _ := a.snapshot(); !slices.Equal(got, want) {
		t.Fatalf("applied %q, want the committed commands %q", got, want)
	}
	// The replayed additions of 2 and 3 must not make it dial them: their
	// messages would come back over its own streams, past the peer guard,
	// and they would never hear they were removed.
	for _, id := range []uint64{2, 3} {
		if n.transport.Get(types.ID(id)) != nil {
			t.Fatalf("member 1 dials member %d, which it removed", id)
		}
	}
	proposeAndWait(t, n, a, "after-force")
	want = append(want, "after-force")
	n.Stop()

	for _, force := range []bool{false, true} {
		n, a, err := startTestNode(t, dir, peerAddr, peers, force)
		if err != nil {
			t.Fatalf("restart (force %v): %v", force, err)
		}
		soleLeader(t, n)
		waitFor(t, "replay", func() error {
			if got, _ := a.snapshot(); !slices.Equal(got, want) {
				return fmt.Errorf("applied %q, want %q", got, want)
			}
			return nil
		})
		data := fmt.Sprintf("restart-force-%v", force)
		proposeAndWait(t, n, a, data)
		want = append(want, data)
		n.Stop()
	}
}

// TestForceNewClusterRefusals: a data dir without raft state, a learner's
// and a removed member's are refused with ErrForceNewCluster, and nothing is
// written.
func TestForceNewClusterRefusals(t *testing.T) {
	lg := zaptest.NewLogger(t)
	self := closedURL(t)
	peers := []string{self, closedURL(t), closedURL(t)}
	peerAddr := self[len("http://"):]
	tests := []struct {
		name  string
		confs []*raftpb.Entry // nil: an empty data dir
	}{
		{name: "empty data dir"},
		{name: "learner", confs: []*raftpb.Entry{
			confEntry(1, raftpb.ConfChangeAddNode, 2, peers[1]),
			confEntry(2, raftpb.ConfChangeAddNode, 3, peers[2]),
			confEntry(3, raftpb.ConfChangeAddLearnerNode, 1, peers[0]),
		}},
		{name: "removed member", confs: []*raftpb.Entry{
			confEntry(1, raftpb.ConfChangeAddNode, 1, peers[0]),
			confEntry(2, raftpb.ConfChangeAddNode, 2, peers[1]),
			confEntry(3, raftpb.ConfChangeAddNode, 3, peers[2]),
			confEntry(4, raftpb.ConfChangeRemoveNode, 1, peers[0]),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.confs != nil {
				writeLostClusterWAL(t, lg, dir, tt.confs, 2, 2)
			}
			before := dirDigest(t, dir)
			_, _, err := startTestNode(t, dir, peerAddr, peers, true)
			if !errors.Is(err, ErrForceNewCluster) {
				t.Fatalf("got %v, want ErrForceNewCluster", err)
			}
			t.Log(err)
			if after := dirDigest(t, dir); !slices.Equal(before, after) {
				t.Fatalf("the refused start changed the data dir: %v, then %v", before, after)
			}
		})
	}
}

// TestForceNewClusterRewriteIsDurable: the rewrite is on disk before raft
// starts, so a member that crashed right after it starts again, without the
// flag, as the one-member cluster with the committed commands.
func TestForceNewClusterRewriteIsDurable(t *testing.T) {
	lg := zaptest.NewLogger(t)
	dir := t.TempDir()
	self := closedURL(t)
	peers := []string{self, closedURL(t), closedURL(t)}
	writeLostClusterWAL(t, lg, dir, []*raftpb.Entry{
		confEntry(1, raftpb.ConfChangeAddNode, 1, peers[0]),
		confEntry(2, raftpb.ConfChangeAddNode, 2, peers[1]),
		confEntry(3, raftpb.ConfChangeAddNode, 3, peers[2]),
	}, 4, 2)
	st, ds, err := openStorage(lg, dir, 1, testClusterID)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{ID: 1, Peers: peers, DataDir: dir}
	if _, err := forceNewCluster(lg, &cfg, st, ds); err != nil {
		t.Fatal(err)
	}
	if err := st.close(); err != nil { // the crash: raft never started
		t.Fatal(err)
	}
	n, a, err := startTestNode(t, dir, self[len("http://"):], peers, false)
	if err != nil {
		t.Fatal(err)
	}
	soleLeader(t, n)
	want := []string{"cmd-4", "cmd-5"}
	waitFor(t, "replay", func() error {
		if got, _ := a.snapshot(); !slices.Equal(got, want) {
			return fmt.Errorf("applied %q, want %q", got, want)
		}
		return nil
	})
}
