// Package raftnode runs one raft member: it owns the raft.Node, its
// in-memory log, the WAL and snapshot files, the member table and the rafthttp
// transport, and drives raft's Ready loop. The application talks to it
// through channels, as in etcd's raftexample: proposals go in on ProposeC,
// committed commands come out on CommitC, and the node's end is reported on
// ErrorC.
package raftnode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/pkg/v3/idutil"
	"go.etcd.io/etcd/pkg/v3/wait"
	"go.etcd.io/etcd/server/v3/etcdserver/api/rafthttp"
	"go.etcd.io/etcd/server/v3/etcdserver/api/snap"
	stats "go.etcd.io/etcd/server/v3/etcdserver/api/v2stats"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// Proposal is a command for the state machine.
type Proposal struct {
	Data []byte
	// Result receives exactly one value: nil once raft accepted the proposal
	// (it may still be lost if leadership changes before it commits), or the
	// reason it was refused. It must have a buffer of one.
	Result chan<- error
}

// Entry is one committed command.
type Entry struct {
	Index uint64
	Data  []byte
}

// Commit is the next piece of committed state, in log order. The consumer
// applies Snapshot (when non-nil, it replaces all state) and then Entries, and
// closes Done; the node waits for Done before it takes a snapshot, so a
// snapshot never claims more than the state machine holds.
type Commit struct {
	Snapshot []byte
	Entries  []Entry
	// Index is the log index the state machine reaches with this commit. It
	// can exceed the last entry's index, since configuration changes and
	// empty entries are consumed by the node.
	Index uint64
	Done  chan struct{}
}

// confChangeRequest is a configuration change on its way to raft.
type confChangeRequest struct {
	cc     *raftpb.ConfChange
	result chan error
}

// Node is a running raft member. Create it with Start.
type Node struct {
	cfg Config
	lg  *zap.Logger

	proposeC    chan Proposal
	confChangeC chan confChangeRequest
	commitC     chan Commit
	errorC      chan error

	node        raft.Node
	raftStorage *raft.MemoryStorage
	storage     *storage
	transport   *rafthttp.Transport
	peerServer  *http.Server

	// Owned by the Ready loop goroutine.
	confState     *raftpb.ConfState
	snapshotIndex uint64
	appliedIndex  uint64
	lastDone      chan struct{}
	// snapshotInFlight is set while a snapshot is written in the
	// background; its result arrives on snapshotDone.
	snapshotInFlight bool
	snapshotDone     chan snapshotResult
	members          *membership
	removedSelf      bool
	initialCommit    *Commit // the loaded snapshot, sent before anything else

	// Shared with request goroutines.
	view          atomic.Pointer[membership] // a copy of members, replaced on change
	leader        atomic.Uint64
	term          atomic.Uint64
	applied       atomic.Uint64 // mirrors appliedIndex
	lastConfIndex atomic.Uint64 // index of the newest configuration change in the log
	leaderMu      sync.Mutex
	leaderC       chan struct{} // closed and replaced when the leader changes
	clusterID     uint64
	startedAt     time.Time
	status        atomic.Pointer[Status] // published by the Ready loop
	confWait      wait.Wait
	idGen         *idutil.Generator
	confMu        sync.Mutex // one configuration change at a time from this node
	readMu        sync.Mutex
	readBatch     *readBatch
	readNotify    chan struct{}
	readStates    chan raft.ReadState
	proposing     atomic.Int32 // 1 while proposeLoop hands a proposal to raft
	metrics       *metrics

	stopOnce sync.Once
	stopc    chan struct{} // closed to ask every goroutine to stop
	done     chan struct{} // closed when everything has stopped
	wg       sync.WaitGroup
}

// Start opens the data dir, replays it, and starts raft, the transport and the
// Ready loop. The caller must consume CommitC and ErrorC.
func Start(cfg Config) (*Node, error) {
	cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PeerListener == nil || cfg.StateMachine == nil {
		return nil, fmt.Errorf("%w: peer listener and state machine are required", ErrInvalidConfig)
	}
	lg := cfg.Logger.With(zap.String("member", types.ID(cfg.ID).String()))
	clusterID, err := initialClusterID(lg, &cfg)
	if err != nil {
		return nil, err
	}
	st, ds, err := openStorage(lg, cfg.DataDir, cfg.ID, clusterID)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:          cfg,
		lg:           lg,
		proposeC:     make(chan Proposal, 256),
		confChangeC:  make(chan confChangeRequest),
		commitC:      make(chan Commit, 64),
		errorC:       make(chan error, 1),
		raftStorage:  raft.NewMemoryStorage(),
		storage:      st,
		members:      newMembership(),
		confWait:     wait.New(),
		idGen:        idutil.NewGenerator(uint16(cfg.ID), time.Now()),
		readNotify:   make(chan struct{}, 1),
		readStates:   make(chan raft.ReadState, 16),
		snapshotDone: make(chan snapshotResult),
		leaderC:      make(chan struct{}),
		clusterID:    ds.clusterID,
		startedAt:    time.Now(),
		stopc:        make(chan struct{}),
		done:         make(chan struct{}),
	}
	n.metrics = newMetrics(n)
	if err := n.replay(ds); err != nil {
		st.close()
		return nil, err
	}
	n.view.Store(n.members.clone())

	rc := &raft.Config{
		ID:                        cfg.ID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   n.raftStorage,
		Applied:                   n.appliedIndex,
		MaxSizePerMsg:             1 << 20,
		MaxInflightMsgs:           256,
		MaxUncommittedEntriesSize: 1 << 30,
		CheckQuorum:               true,
		PreVote:                   true,
		StepDownOnRemoval:         true,
		Logger:                    newRaftLogger(lg),
	}
	if err := n.startRaft(rc, ds.fresh); err != nil {
		st.close()
		return nil, err
	}
	selfURLs, err := types.NewURLs([]string{cfg.Peers[cfg.ID-1]})
	if err != nil {
		n.node.Stop()
		st.close()
		return nil, fmt.Errorf("%w: own peer URL: %w", ErrInvalidConfig, err)
	}

	n.transport = &rafthttp.Transport{
		Logger:      lg,
		ID:          types.ID(cfg.ID),
		URLs:        selfURLs,
		ClusterID:   types.ID(ds.clusterID),
		Raft:        transportRaft{n},
		Snapshotter: st.snapshotter,
		ServerStats: stats.NewServerStats("", ""),
		LeaderStats: stats.NewLeaderStats(lg, strconv.FormatUint(cfg.ID, 10)),
		ErrorC:      make(chan error, 1),
	}
	if err := n.transport.Start(); err != nil {
		n.node.Stop()
		st.close()
		return nil, fmt.Errorf("raftnode: start transport: %w", err)
	}
	// A fresh member dials the peers it was started with; a restarted one
	// dials the members its data dir knows. Replayed configuration changes
	// add the rest.
	if ds.fresh {
		for i, u := range cfg.Peers {
			n.addPeer(uint64(i+1), []string{u})
		}
	}
	for _, m := range n.members.list() {
		n.addPeer(m.ID, m.PeerURLs)
	}
	if err := n.metrics.register(cfg.Metrics); err != nil {
		n.transport.Stop()
		n.node.Stop()
		st.close()
		return nil, err
	}

	n.peerServer = &http.Server{Handler: n.peerHandler(), ReadHeaderTimeout: 10 * time.Second}
	n.wg.Add(4)
	go func() {
		defer n.wg.Done()
		if err := n.peerServer.Serve(cfg.PeerListener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.lg.Error("peer server stopped", zap.Error(err))
		}
	}()
	go func() { defer n.wg.Done(); n.proposeLoop() }()
	go func() { defer n.wg.Done(); n.readLoop() }()
	go func() { defer n.wg.Done(); n.publishAttributes() }()
	go n.run()
	return n, nil
}

// startRaft starts or restarts raft. Raft panics on a log it cannot accept
// (a hard state committed past the last entry, say); that is reported as an
// error about the data dir, not as a crash.
func (n *Node) startRaft(rc *raft.Config, fresh bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("raftnode: raft refused the state in %s: %v", n.cfg.DataDir, r)
		}
	}()
	if !fresh || n.cfg.Join {
		n.node = raft.RestartNode(rc)
		return nil
	}
	peers := make([]raft.Peer, len(n.cfg.Peers))
	for i, u := range n.cfg.Peers {
		peers[i] = raft.Peer{ID: uint64(i + 1), Context: encodeContext([]string{u})}
	}
	n.node = raft.StartNode(rc, peers)
	return nil
}

// addPeer tells the transport how to reach a member. rafthttp panics on a
// URL it cannot parse; such a URL never passes ValidatePeerURL, so this
// only guards against a table written by something else.
func (n *Node) addPeer(id uint64, peerURLs []string) {
	if id == n.cfg.ID {
		return
	}
	if _, err := types.NewURLs(peerURLs); err != nil {
		n.lg.Error("cannot reach member: bad peer URL", zap.Uint64("member", id), zap.Strings("urls", peerURLs), zap.Error(err))
		return
	}
	n.transport.AddPeer(types.ID(id), peerURLs)
}

// replay rebuilds the in-memory log and the member table from disk and
// refuses a member that was removed from the cluster.
func (n *Node) replay(ds *diskState) error {
	if ds.snapshot != nil {
		members, appData, streamed, err := decodeEnvelope(ds.snapshot.GetData())
		if err == nil && streamed {
			err = fmt.Errorf("%w: stored snapshot lacks its data", errBadEnvelope)
		}
		if err != nil {
			return fmt.Errorf("raftnode: load snapshot: %w", err)
		}
		if err := n.raftStorage.ApplySnapshot(ds.snapshot); err != nil {
			return fmt.Errorf("raftnode: load snapshot: %w", err)
		}
		md := ds.snapshot.GetMetadata()
		n.members = members
		n.confState = md.GetConfState()
		n.snapshotIndex, n.appliedIndex = md.GetIndex(), md.GetIndex()
		n.applied.Store(md.GetIndex())
		n.initialCommit = &Commit{Snapshot: appData, Index: md.GetIndex(), Done: make(chan struct{})}
	}
	if err := n.raftStorage.SetHardState(ds.hardState); err != nil {
		return fmt.Errorf("raftnode: load hard state: %w", err)
	}
	if err := n.raftStorage.Append(ds.entries); err != nil {
		return fmt.Errorf("raftnode: load entries: %w", err)
	}
	// The committed entries will be applied again once raft starts; look
	// ahead at their configuration changes so that a member whose removal is
	// already committed refuses to start instead of rejoining.
	future := n.members.clone()
	for _, e := range ds.entries {
		if e.GetIndex() > ds.hardState.GetCommit() {
			break
		}
		if e.GetType() != raftpb.EntryConfChange {
			continue
		}
		cc := &raftpb.ConfChange{}
		if err := proto.Unmarshal(e.GetData(), cc); err != nil {
			return fmt.Errorf("raftnode: decode configuration change at %d: %w", e.GetIndex(), err)
		}
		if future.check(cc) == nil {
			future.apply(cc)
		}
	}
	if future.isRemoved(n.cfg.ID) {
		return fmt.Errorf("%w: member %d; wipe %s and add it back as a new member", ErrRemoved, n.cfg.ID, n.cfg.DataDir)
	}
	return nil
}

// ProposeC accepts proposals for the state machine.
func (n *Node) ProposeC() chan<- Proposal { return n.proposeC }

// CommitC delivers committed state in log order. It is closed when the node
// stops.
func (n *Node) CommitC() <-chan Commit { return n.commitC }

// ErrorC delivers why the node stopped, then is closed: nil after Stop,
// ErrRemoved when this member was removed, another error on failure.
func (n *Node) ErrorC() <-chan error { return n.errorC }

// Done is closed once the node has stopped completely.
func (n *Node) Done() <-chan struct{} { return n.done }

// ID returns this member's id.
func (n *Node) ID() uint64 { return n.cfg.ID }

// Leader returns the current leader's id, or 0 when none is known.
func (n *Node) Leader() uint64 { return n.leader.Load() }

// Term returns the current raft term.
func (n *Node) Term() uint64 { return n.term.Load() }

// setLeader records a new leader and wakes whoever waits for a change.
func (n *Node) setLeader(lead uint64) {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	n.leader.Store(lead)
	if lead != raft.None {
		n.metrics.leaderChanges.Inc()
	}
	close(n.leaderC)
	n.leaderC = make(chan struct{})
}

// leaderChanged returns the current leader and a channel closed at the next
// change.
func (n *Node) leaderChanged() (uint64, <-chan struct{}) {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	return n.leader.Load(), n.leaderC
}

// Name returns this member's name.
func (n *Node) Name() string { return n.cfg.Name }

// ClusterID returns the id of the cluster this member belongs to.
func (n *Node) ClusterID() uint64 { return n.clusterID }

// StartedAt returns when this node started.
func (n *Node) StartedAt() time.Time { return n.startedAt }

// DataDir returns the node's data directory.
func (n *Node) DataDir() string { return n.cfg.DataDir }

// Status is a point-in-time view of the node's raft state.
type Status struct {
	ID     uint64 `json:"id"`
	Leader uint64 `json:"leader"`
	Term   uint64 `json:"term"`
	// Commit is the highest index known committed; Applied the highest
	// handed to the state machine; Snapshot the index of the last snapshot.
	Commit   uint64 `json:"commit_index"`
	Applied  uint64 `json:"applied_index"`
	Snapshot uint64 `json:"snapshot_index"`
	// RaftState is follower, candidate, leader or pre-candidate.
	RaftState string `json:"raft_state"`
}

// Status returns the node's raft state as of its last Ready.
func (n *Node) Status() Status {
	if st := n.status.Load(); st != nil {
		return *st
	}
	return Status{ID: n.cfg.ID}
}

// publishStatus records the loop's view of raft for Status.
func (n *Node) publishStatus(rs raft.StateType, commit uint64) {
	n.status.Store(&Status{
		ID:        n.cfg.ID,
		Leader:    n.leader.Load(),
		Term:      n.term.Load(),
		Commit:    commit,
		Applied:   n.appliedIndex,
		Snapshot:  n.snapshotIndex,
		RaftState: rs.String(),
	})
}

// Members returns the member table ordered by id.
func (n *Node) Members() []Member { return n.view.Load().list() }

// Stop stops the node and waits until it has stopped. A leader first hands
// leadership to another voter. It is idempotent.
func (n *Node) Stop() {
	n.handOverLeadership()
	n.stopOnce.Do(func() { close(n.stopc) })
	<-n.done
}

// run drives the Ready loop and then tears everything down in order: raft,
// the transport, the peer server and helper goroutines, the WAL, and finally
// the channels that tell the application.
func (n *Node) run() {
	err := n.serveChannels()
	select {
	case <-n.stopc:
		if errors.Is(err, ErrStopped) {
			err = nil // stopped while handing over a commit
		}
	default:
	}
	if errors.Is(err, ErrRemoved) {
		if merr := n.storage.markRemoved(); merr != nil {
			n.lg.Error("record removal in the data dir", zap.Error(merr))
		}
	} else if err != nil {
		n.lg.Error("raft node failed", zap.Error(err))
	}
	n.stopOnce.Do(func() { close(n.stopc) })
	n.node.Stop()
	n.transport.Stop()
	if cerr := n.peerServer.Close(); cerr != nil {
		n.lg.Warn("close peer server", zap.Error(cerr))
	}
	n.wg.Wait()
	if cerr := n.storage.close(); cerr != nil && err == nil {
		err = cerr
	}
	// The reason goes out before commitC closes, so that whoever sees the
	// state machine stop can already read why.
	n.errorC <- err
	close(n.errorC)
	close(n.commitC)
	close(n.done)
}

// serveChannels is the Ready loop. For each Ready, following raft's contract:
// persist the snapshot, hard state and entries; send messages; apply the
// snapshot and committed entries; then Advance.
func (n *Node) serveChannels() error {
	if c := n.initialCommit; c != nil {
		n.initialCommit = nil
		if err := n.publish(*c); err != nil {
			return err
		}
	}
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	isLeader := false
	raftState := raft.StateFollower
	var commit uint64
	for {
		select {
		case <-ticker.C:
			n.node.Tick()
		case rd := <-n.node.Ready():
			// The term first, so that whoever sees the new leader sees its
			// term too.
			if hs := rd.HardState; hs != nil && hs.Term != nil {
				n.term.Store(hs.GetTerm())
			}
			if rd.SoftState != nil {
				if lead := rd.SoftState.Lead; lead != n.leader.Load() {
					n.lg.Info("leader changed", zap.Uint64("leader", lead))
					n.setLeader(lead)
				}
				raftState = rd.SoftState.RaftState
				isLeader = raftState == raft.StateLeader
			}
			if hs := rd.HardState; hs != nil {
				if hs.Commit != nil {
					commit = hs.GetCommit()
				}
			}
			for _, rs := range rd.ReadStates {
				select {
				case n.readStates <- rs:
				default: // the reader retries; never block the loop on it
				}
			}
			// A leader may send before persisting (raft thesis 10.2.1):
			// raft counts its own entries toward a quorum only after Advance.
			if isLeader {
				n.send(rd.Messages)
			}
			if err := n.persist(rd); err != nil {
				return err
			}
			if !isLeader {
				n.send(rd.Messages)
			}
			if err := n.publishEntries(rd.CommittedEntries); err != nil {
				return err
			}
			if err := n.maybeSnapshot(); err != nil {
				return err
			}
			n.node.Advance()
			n.publishStatus(raftState, commit)
			if n.removedSelf {
				n.lg.Info("this member was removed from the cluster; stopping")
				return ErrRemoved
			}
		case res := <-n.snapshotDone:
			if err := n.finishSnapshot(res); err != nil {
				return err
			}
		case err := <-n.transport.ErrorC:
			// rafthttp reports only one critical error: a peer answered that
			// this member was removed. That happens when the removal was
			// committed while this member could not learn it.
			n.lg.Info("a peer reports this member was removed from the cluster; stopping", zap.Error(err))
			return ErrRemoved
		case <-n.stopc:
			return nil
		}
	}
}

// persist writes a Ready's snapshot, hard state and entries to disk and to
// the in-memory log, and hands a received snapshot to the state machine.
func (n *Node) persist(rd raft.Ready) error {
	hasSnap := !raft.IsEmptySnap(rd.Snapshot)
	if hasSnap {
		if err := n.awaitSnapshot(); err != nil {
			return err
		}
		// Check the snapshot, and join it with its streamed data, before it
		// is made durable: a stored snapshot that cannot be loaded would stop
		// every later start.
		if err := n.completeSnapshot(rd.Snapshot); err != nil {
			return err
		}
		if err := n.storage.saveSnapshot(rd.Snapshot); err != nil {
			return err
		}
	}
	start := time.Now()
	if err := n.storage.wal.Save(rd.HardState, rd.Entries); err != nil {
		return fmt.Errorf("raftnode: save wal: %w", err)
	}
	if rd.MustSync {
		n.metrics.walFsync.Observe(time.Since(start).Seconds())
	}
	if hasSnap {
		// The hard state must be durable before raft forgets the log the
		// snapshot replaces.
		if err := n.storage.wal.Sync(); err != nil {
			return fmt.Errorf("raftnode: sync wal: %w", err)
		}
		if err := n.raftStorage.ApplySnapshot(rd.Snapshot); err != nil {
			return fmt.Errorf("raftnode: apply snapshot: %w", err)
		}
		if err := n.applySnapshot(rd.Snapshot); err != nil {
			return err
		}
	}
	if err := n.raftStorage.Append(rd.Entries); err != nil {
		return fmt.Errorf("raftnode: append entries: %w", err)
	}
	for _, e := range rd.Entries {
		if e.GetType() != raftpb.EntryNormal {
			n.lastConfIndex.Store(e.GetIndex())
		}
	}
	return nil
}

// completeSnapshot checks a snapshot received from the leader and, when its
// state machine data was streamed, puts that data back into it from the file
// rafthttp saved.
func (n *Node) completeSnapshot(snapshot *raftpb.Snapshot) error {
	index := snapshot.GetMetadata().GetIndex()
	members, _, streamed, err := decodeEnvelope(snapshot.GetData())
	if err != nil {
		return fmt.Errorf("raftnode: received snapshot at %d: %w", index, err)
	}
	if !streamed {
		return nil
	}
	appData, err := n.storage.readSnapDB(index)
	if err != nil {
		return err
	}
	snapshot.Data = encodeEnvelope(members, appData)
	return nil
}

// applySnapshot replaces the member table and the state machine's state with
// a snapshot received from the leader.
func (n *Node) applySnapshot(snapshot *raftpb.Snapshot) error {
	md := snapshot.GetMetadata()
	if md.GetIndex() <= n.appliedIndex {
		return fmt.Errorf("raftnode: snapshot index %d is not after applied index %d", md.GetIndex(), n.appliedIndex)
	}
	members, appData, _, err := decodeEnvelope(snapshot.GetData())
	if err != nil {
		return fmt.Errorf("raftnode: apply snapshot: %w", err)
	}
	n.lg.Info("applying snapshot from leader", zap.Uint64("index", md.GetIndex()))
	n.metrics.snapshotsReceived.Inc()
	n.storage.releaseSnapDBs(md.GetIndex())
	n.setMembers(members)
	n.confState = md.GetConfState()
	n.snapshotIndex = md.GetIndex()
	if err := n.publish(Commit{Snapshot: appData, Index: md.GetIndex(), Done: make(chan struct{})}); err != nil {
		return err
	}
	n.purge()
	return nil
}

// purge removes old files. A failure costs disk space, not correctness, so it
// is logged and tried again after the next snapshot.
func (n *Node) purge() {
	if err := n.storage.purge(n.cfg.MaxSnapshots, n.cfg.MaxWALs); err != nil {
		n.lg.Warn("purge old snapshot and wal files", zap.Error(err))
	}
}

// setMembers installs a new member table and tells the transport.
func (n *Node) setMembers(m *membership) {
	for id := range n.members.members {
		if _, ok := m.members[id]; !ok && id != n.cfg.ID {
			n.transport.RemovePeer(types.ID(id))
		}
	}
	for id, mem := range m.members {
		n.addPeer(id, mem.PeerURLs)
	}
	n.members = m
	n.view.Store(m.clone())
}

// publishEntries applies configuration changes itself and sends the normal
// entries to the state machine as one Commit.
func (n *Node) publishEntries(ents []*raftpb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	if first := ents[0].GetIndex(); first > n.appliedIndex+1 {
		return fmt.Errorf("raftnode: first committed index %d leaves a gap after applied index %d", first, n.appliedIndex)
	}
	batch := make([]Entry, 0, len(ents))
	for _, e := range ents {
		if e.GetIndex() <= n.appliedIndex {
			continue
		}
		switch e.GetType() {
		case raftpb.EntryNormal:
			switch data := e.GetData(); {
			case isAttributes(data):
				n.applyAttributes(data)
			case len(data) > 0:
				batch = append(batch, Entry{Index: e.GetIndex(), Data: data})
			}
		case raftpb.EntryConfChange:
			cc := &raftpb.ConfChange{}
			if err := proto.Unmarshal(e.GetData(), cc); err != nil {
				return fmt.Errorf("raftnode: decode configuration change at %d: %w", e.GetIndex(), err)
			}
			n.applyConfChange(cc)
		default:
			return fmt.Errorf("raftnode: unexpected entry type %s at %d", e.GetType(), e.GetIndex())
		}
	}
	last := ents[len(ents)-1].GetIndex()
	if last <= n.appliedIndex {
		return nil
	}
	if err := n.publish(Commit{Entries: batch, Index: last, Done: make(chan struct{})}); err != nil {
		return err
	}
	n.metrics.proposalsCommitted.Add(float64(len(batch)))
	return nil
}

func (n *Node) publish(c Commit) error {
	select {
	case n.commitC <- c:
	case <-n.stopc:
		return ErrStopped
	}
	n.appliedIndex = c.Index
	n.applied.Store(c.Index)
	n.lastDone = c.Done
	return nil
}

// applyAttributes records what a member published about itself.
func (n *Node) applyAttributes(data []byte) {
	a, err := unmarshalAttributes(data)
	if err != nil {
		// Deterministic on every replica: skipping keeps them equal.
		n.lg.Warn("skip undecodable member attributes", zap.Error(err))
		return
	}
	n.members.applyAttributes(a)
	n.view.Store(n.members.clone())
}

// applyConfChange decides a committed configuration change against the
// member table. A change the table rejects is still handed to raft with node
// id 0, which raft treats as a no-op, so that raft and the table agree.
func (n *Node) applyConfChange(cc *raftpb.ConfChange) {
	err := n.members.check(cc)
	if err != nil {
		n.lg.Warn("rejected configuration change", zap.Stringer("type", cc.GetType()),
			zap.Uint64("node", cc.GetNodeId()), zap.Error(err))
		cc.NodeId = proto.Uint64(raft.None)
	}
	n.confState = n.node.ApplyConfChange(cc)
	if err == nil {
		id := cc.GetNodeId()
		n.members.apply(cc)
		n.view.Store(n.members.clone())
		n.lg.Info("applied configuration change", zap.Stringer("type", cc.GetType()),
			zap.Uint64("node", id), zap.ByteString("context", cc.GetContext()))
		switch {
		case cc.GetType() == raftpb.ConfChangeRemoveNode && id == n.cfg.ID:
			n.removedSelf = true
		case cc.GetType() == raftpb.ConfChangeRemoveNode:
			n.transport.RemovePeer(types.ID(id))
		case id == n.cfg.ID:
		case cc.GetType() == raftpb.ConfChangeUpdateNode:
			if _, uerr := types.NewURLs(n.members.members[id].PeerURLs); uerr == nil {
				n.transport.UpdatePeer(types.ID(id), n.members.members[id].PeerURLs)
			}
		default:
			n.addPeer(id, n.members.members[id].PeerURLs)
		}
	}
	if cc.GetId() != 0 {
		n.confWait.Trigger(cc.GetId(), err)
	}
}

// send hands messages to the transport. A snapshot goes through rafthttp's
// snapshot sender: the message carries the member table, and the state
// machine's data is streamed after it, so its size is not bounded by
// rafthttp's message limits.
func (n *Node) send(msgs []*raftpb.Message) {
	out := msgs[:0:0]
	for _, m := range msgs {
		if m.GetType() != raftpb.MsgSnap {
			out = append(out, m)
			continue
		}
		members, appData, _, err := decodeEnvelope(m.GetSnapshot().GetData())
		if err != nil {
			n.lg.Error("cannot send snapshot", zap.Uint64("to", m.GetTo()), zap.Error(err))
			n.node.ReportSnapshot(m.GetTo(), raft.SnapshotFailure)
			continue
		}
		// Raft hands out a copy of its snapshot, so it is ours to change.
		m.Snapshot.Data = appendEnvelope(streamedEnvelopeMagic, members, nil)
		n.transport.SendSnapshot(snap.NewMessage(m, io.NopCloser(bytes.NewReader(appData)), int64(len(appData))))
	}
	n.transport.Send(out)
}

// snapshotResult is the outcome of a snapshot written in the background.
type snapshotResult struct {
	index uint64
	err   error
}

// maybeSnapshot starts a snapshot once SnapshotCount entries were applied
// since the last one. The loop only captures the state, which is cheap;
// encoding it and writing it to disk happen on another goroutine, so that a
// large store does not stop the loop from ticking and heartbeating. One
// snapshot is in flight at a time; finishSnapshot completes it.
func (n *Node) maybeSnapshot() error {
	if n.snapshotInFlight || n.appliedIndex-n.snapshotIndex < n.cfg.SnapshotCount {
		return nil
	}
	select {
	case <-n.lastDone:
	case <-n.stopc:
		return ErrStopped
	}
	encode := n.cfg.StateMachine.Capture()
	index := n.appliedIndex
	confState := &raftpb.ConfState{}
	if n.confState != nil {
		confState = proto.Clone(n.confState).(*raftpb.ConfState)
	}
	members := n.members.clone()
	n.snapshotInFlight = true
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		err := n.writeSnapshot(index, confState, members, encode)
		select {
		case n.snapshotDone <- snapshotResult{index: index, err: err}:
		case <-n.stopc:
		}
	}()
	return nil
}

// writeSnapshot encodes and persists a snapshot at index. MemoryStorage and
// the WAL lock internally, so this may run beside the Ready loop.
func (n *Node) writeSnapshot(index uint64, cs *raftpb.ConfState, members *membership, encode func() ([]byte, error)) error {
	start := time.Now()
	appData, err := encode()
	if err != nil {
		return fmt.Errorf("raftnode: snapshot state machine: %w", err)
	}
	snapshot, err := n.raftStorage.CreateSnapshot(index, cs, encodeEnvelope(members, appData))
	if err != nil {
		return fmt.Errorf("raftnode: create snapshot: %w", err)
	}
	if err := n.storage.saveSnapshot(snapshot); err != nil {
		return err
	}
	n.metrics.snapshotDuration.Observe(time.Since(start).Seconds())
	n.metrics.snapshotSize.Observe(float64(len(snapshot.GetData())))
	n.lg.Info("saved snapshot", zap.Uint64("index", index), zap.Int("bytes", len(snapshot.GetData())))
	return nil
}

// finishSnapshot completes a background snapshot: it compacts the in-memory
// log, keeping SnapshotCatchUpEntries for slow followers, and purges old
// files.
func (n *Node) finishSnapshot(res snapshotResult) error {
	n.snapshotInFlight = false
	if res.err != nil {
		return res.err
	}
	if res.index <= n.snapshotIndex {
		return nil
	}
	n.snapshotIndex = res.index
	compactIndex := uint64(1)
	if res.index > n.cfg.SnapshotCatchUpEntries {
		compactIndex = res.index - n.cfg.SnapshotCatchUpEntries
	}
	if err := n.raftStorage.Compact(compactIndex); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return fmt.Errorf("raftnode: compact log: %w", err)
	}
	n.purge()
	return nil
}

// awaitSnapshot waits for the snapshot in flight, if any, so that a snapshot
// received from the leader is never raced by an older local one.
func (n *Node) awaitSnapshot() error {
	if !n.snapshotInFlight {
		return nil
	}
	select {
	case res := <-n.snapshotDone:
		return n.finishSnapshot(res)
	case <-n.stopc:
		return ErrStopped
	}
}

// proposeLoop hands proposals and configuration changes to raft one at a
// time; raft batches everything proposed between two Readys into one append
// and one fsync.
func (n *Node) proposeLoop() {
	for {
		select {
		case p := <-n.proposeC:
			p.Result <- n.propose(func(ctx context.Context) error { return n.node.Propose(ctx, p.Data) })
		case r := <-n.confChangeC:
			r.result <- n.propose(func(ctx context.Context) error { return n.node.ProposeConfChange(ctx, r.cc) })
		case <-n.stopc:
			return
		}
	}
}

// propose hands one proposal to raft. It is counted in
// raftkv_proposals_pending until raft has taken or refused it, and in
// raftkv_proposals_failed_total when refused.
func (n *Node) propose(step func(context.Context) error) (err error) {
	n.proposing.Store(1)
	defer func() {
		n.proposing.Store(0)
		if err != nil {
			n.metrics.proposalsFailed.Inc()
		}
	}()
	if n.leader.Load() == raft.None {
		return ErrNoLeader
	}
	// Raft blocks a proposal while it has no leader; give up after an
	// election timeout so that one stuck proposal does not hold up the rest.
	ctx, cancel := context.WithTimeout(context.Background(), n.electionTimeout())
	defer cancel()
	err = step(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrProposalDropped):
		return ErrProposalDropped
	case errors.Is(err, raft.ErrStopped):
		return ErrStopped
	case errors.Is(err, context.DeadlineExceeded):
		return ErrNoLeader
	default:
		return fmt.Errorf("raftnode: propose: %w", err)
	}
}

func (n *Node) electionTimeout() time.Duration {
	return time.Duration(n.cfg.ElectionTicks) * n.cfg.TickInterval
}

// transportRaft is the face the node shows to rafthttp.
type transportRaft struct{ n *Node }

func (t transportRaft) Process(ctx context.Context, m *raftpb.Message) error {
	if t.n.view.Load().isRemoved(m.GetFrom()) {
		return errFromRemovedMember{}
	}
	return t.n.node.Step(ctx, m)
}

// errFromRemovedMember answers a removed member with 403, which its rafthttp
// pipeline reports to it as "removed from the cluster", so it stops.
type errFromRemovedMember struct{}

func (errFromRemovedMember) Error() string { return "raftnode: message from a removed member" }

func (errFromRemovedMember) WriteTo(w http.ResponseWriter) {
	http.Error(w, "the sender was removed from the cluster", http.StatusForbidden)
}
func (t transportRaft) IsIDRemoved(id uint64) bool  { return t.n.view.Load().isRemoved(id) }
func (t transportRaft) ReportUnreachable(id uint64) { t.n.node.ReportUnreachable(id) }
func (t transportRaft) ReportSnapshot(id uint64, status raft.SnapshotStatus) {
	t.n.node.ReportSnapshot(id, status)
}
