// Package raftnode runs one raft member: it owns the raft.Node, its
// in-memory log, the WAL and snapshot files, the member table and the rafthttp
// transport, and drives raft's Ready loop. The application talks to it
// through channels, as in etcd's raftexample: proposals go in on ProposeC,
// committed commands come out on CommitC, and the node's end is reported on
// ErrorC.
package raftnode

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/pkg/v3/idutil"
	"go.etcd.io/etcd/pkg/v3/wait"
	"go.etcd.io/etcd/server/v3/etcdserver/api/rafthttp"
	stats "go.etcd.io/etcd/server/v3/etcdserver/api/v2stats"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
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
//
// The Ready loop (run, serveChannels in ready.go) follows raft's contract
// for each Ready, in this order:
//  1. record the term and leader it reports, and hand its ReadStates to the
//     read batcher without waiting;
//  2. as leader, send its messages before persisting (raft counts the
//     leader's own entries toward a quorum only after Advance);
//  3. persist: a received snapshot (checked and made durable first), then
//     the hard state and entries in one WAL write, fsynced when MustSync,
//     then the same into the in-memory log;
//  4. as follower, send its messages only now, after the fsync, since they
//     acknowledge what was just saved;
//  5. apply: configuration changes and member attributes here, commands by
//     sending one Commit to the state machine, which applies it on its own
//     goroutine; the loop waits for a Commit's Done only before a snapshot;
//  6. start a background snapshot when one is due, then Advance.
//
// Goroutines, each stopped by closing stopc and waited for in run:
//   - run: the Ready loop; it closes stopc itself when it fails, then stops
//     raft, the transport and the peer server, waits for the rest and
//     closes errorC, commitC and done, in that order;
//   - proposeLoop (propose.go): hands proposals and configuration changes
//     to raft one at a time;
//   - reads.run (readindex.go): the ReadIndex batcher;
//   - publishAttributes (identity.go): publishes this member's name and
//     client URLs until they are committed;
//   - the peer port's HTTP server, stopped by Close;
//   - one per snapshot being written (snapshot.go) or encoded for a
//     follower (sendSnapshot), counted in wg.
//
// rafthttp's own goroutines belong to the transport and end with its Stop.
//
// Beside the loop, each with one owner and behind a small interface:
//   - leadership (leadership.go): who leads at which term, written by the
//     loop in step 1, read by requests and the peer guard;
//   - readIndexer (readindex.go): batches linearizable reads into ReadIndex
//     rounds, knowing raft only through readIndexRaft and the leader only
//     through leaderView.
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
	// snapshotRetryAt and snapshotBackoff hold the next snapshot back after
	// one failed for want of file descriptors (see finishSnapshot).
	snapshotRetryAt time.Time
	snapshotBackoff time.Duration
	members         *membership
	removedSelf     bool
	initialCommit   *Commit // the loaded snapshot, sent before anything else
	// campaignAfter, when set, is the index of the last removal that
	// Config.ForceNewCluster committed: once it is applied this member is
	// the only voter and campaigns at once rather than after an election
	// timeout.
	campaignAfter uint64

	// Shared with request goroutines.
	view          atomic.Pointer[membership] // a copy of members, replaced on change
	replayTo      uint64                     // see publishView
	lead          *leadership                // written by the Ready loop only
	applied       atomic.Uint64              // mirrors appliedIndex
	lastConfIndex atomic.Uint64              // index of the newest configuration change in the log
	confApplied   atomic.Uint64              // index of the newest configuration change applied
	removed       atomic.Bool                // this member stopped because it was removed
	clusterID     uint64
	startedAt     time.Time
	status        atomic.Pointer[Status] // published by the Ready loop
	confWait      wait.Wait
	idGen         *idutil.Generator
	confMu        sync.Mutex // one configuration change at a time from this node
	reads         *readIndexer
	proposing     atomic.Int32 // 1 while proposeLoop hands a proposal to raft
	snapMu        sync.Mutex   // one snapshot received at a time (serveSnapshot)
	metrics       *metrics
	stopFault     atomic.Pointer[string] // why the node stops on a failure
	snapFault     atomic.Pointer[string] // why it cannot store the leader's snapshot
	snapRetries   snapshotRetries        // failed snapshot transfers, as leader
	// forcedOut are the members Config.ForceNewCluster removed; set before
	// the peer port serves and never changed.
	forcedOut map[uint64]struct{}

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
	// Before anything creates a WAL: there is nothing to recover.
	if cfg.ForceNewCluster && !walExists(cfg.DataDir) {
		return nil, fmt.Errorf("%w: %s holds no wal: the flag recovers a member that has data; start it on the data dir of a surviving member",
			ErrForceNewCluster, cfg.DataDir)
	}
	clusterID, err := initialClusterID(lg, &cfg)
	if err != nil {
		return nil, err
	}
	st, ds, err := openStorage(lg, cfg.DataDir, cfg.ID, clusterID)
	if err != nil {
		if cfg.ForceNewCluster && errors.Is(err, ErrRemoved) {
			err = fmt.Errorf("%w: %w; recover from another member's data dir", ErrForceNewCluster, err)
		}
		return nil, err
	}
	var fc forced
	if !cfg.ForceNewCluster {
		// Recovery rewrites the log from the newest state on; it does not
		// need the history, and a second start will rewind.
		st.rewind(ds, cfg.HistoryEntries)
	}
	if cfg.ForceNewCluster {
		if fc, err = forceNewCluster(lg, &cfg, st, ds); err != nil {
			st.close()
			return nil, err
		}
	}
	n := &Node{
		cfg:           cfg,
		lg:            lg,
		proposeC:      make(chan Proposal, 256),
		confChangeC:   make(chan confChangeRequest),
		commitC:       make(chan Commit, 64),
		errorC:        make(chan error, 1),
		raftStorage:   raft.NewMemoryStorage(),
		storage:       st,
		members:       newMembership(),
		confWait:      wait.New(),
		idGen:         idutil.NewGenerator(uint16(cfg.ID), time.Now()),
		snapshotDone:  make(chan snapshotResult),
		clusterID:     ds.clusterID,
		forcedOut:     fc.removed,
		campaignAfter: fc.lastIndex,
		startedAt:     time.Now(),
		stopc:         make(chan struct{}),
		done:          make(chan struct{}),
	}
	n.metrics = newMetrics(n)
	// A node starts without a leader, at the term on disk.
	n.lead = newLeadership(cfg.ID, ds.hardState.GetTerm(), n.electionTimeout(), n.metrics.leaderChanges)
	n.reads = newReadIndexer(n, n.lead, cfg.RequestTimeout, n.stopc)
	committed, err := n.replay(ds)
	if err == nil {
		// Before raft starts, so a refused start appends nothing to the WAL.
		err = checkStoredPeerURLs(lg, &cfg, n.clusterID, committed)
	}
	if err != nil {
		st.close()
		return nil, err
	}
	if !ds.fresh {
		last, _ := n.raftStorage.LastIndex()
		lg.Info("restarting from the data dir", zap.String("data-dir", cfg.DataDir),
			zap.Uint64("snapshot-index", n.snapshotIndex), zap.Uint64("replay-from", n.appliedIndex), zap.Uint64("last-index", last),
			zap.Uint64("commit", ds.hardState.GetCommit()), zap.Uint64("term", ds.hardState.GetTerm()))
	}
	n.view.Store(n.members.clone())
	if ds.newestSnapshot != 0 {
		// A rewound start applies again entries its newest snapshot held:
		// readers see the table they lead to from the start (publishView).
		n.replayTo = ds.hardState.GetCommit()
		n.view.Store(committed.clone())
	}

	rc := &raft.Config{
		ID:                        cfg.ID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   raftStorage{n.raftStorage},
		Applied:                   n.appliedIndex,
		MaxSizePerMsg:             1 << 20,
		MaxInflightMsgs:           cfg.MaxInflightAppends,
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
		Logger:      transportLogger(lg, n.stopping),
		ID:          types.ID(cfg.ID),
		URLs:        selfURLs,
		ClusterID:   types.ID(ds.clusterID),
		Raft:        snapshotReporter{transportRaft{n}},
		Snapshotter: st.snapshotter,
		ServerStats: stats.NewServerStats("", ""),
		LeaderStats: stats.NewLeaderStats(lg, strconv.FormatUint(cfg.ID, 10)),
		ErrorC:      make(chan error, 1),
		// etcd's TLSInfo reads the key pair again at each of rafthttp's
		// handshakes, with no fallback (a bad file fails that dial, which
		// rafthttp retries), but the CA bundle only once, here.
		TLSInfo: cfg.PeerTLS.Info(),
	}
	if err := n.transport.Start(); err != nil {
		n.node.Stop()
		st.close()
		return nil, fmt.Errorf("start transport: %w", err)
	}
	// A fresh member dials the peers it was started with; a restarted one
	// dials the members its data dir knows. Replayed configuration changes
	// add the rest.
	if ds.fresh {
		for i, u := range cfg.Peers {
			n.addPeer(uint64(i+1), []string{u})
		}
	}
	dial := n.members
	if n.replayTo != 0 {
		// A rewound start dials who the committed entries lead to, not
		// who the older snapshot knew (see publishView).
		dial = committed
	}
	for _, m := range dial.list() {
		n.addPeer(m.ID, m.PeerURLs)
	}
	if err := n.metrics.register(cfg.Metrics); err != nil {
		n.transport.Stop()
		n.node.Stop()
		st.close()
		return nil, err
	}
	warnUnauthenticatedPeers(lg, cfg.PeerListener.Addr(), cfg.PeerTLS.ClientCertAuth)
	n.peerServer = &http.Server{Handler: n.watchSnapshotReceipts(n.peerHandler()), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: zap.NewStdLog(lg.Named("peer-http"))}
	n.wg.Add(4)
	go func() {
		defer n.wg.Done()
		if err := n.peerServer.Serve(cfg.PeerListener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.lg.Error("peer server stopped", zap.Error(err))
		}
	}()
	go func() { defer n.wg.Done(); n.proposeLoop() }()
	go func() { defer n.wg.Done(); n.reads.run() }()
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
			err = fmt.Errorf("raft refused the state in %s: %v", n.cfg.DataDir, r)
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
//
// A member that --force-new-cluster removed is never dialed, even while
// replayed entries still add it: over a stream this node dialed, its
// messages would only be dropped here, while on its own dials to this node
// the peer guard answers 403 and it stops.
func (n *Node) addPeer(id uint64, peerURLs []string) {
	if _, out := n.forcedOut[id]; out || id == n.cfg.ID {
		return
	}
	if _, err := types.NewURLs(peerURLs); err != nil {
		n.lg.Error("cannot reach member: bad peer URL", zap.Uint64("member", id), zap.Strings("urls", peerURLs), zap.Error(err))
		return
	}
	n.transport.AddPeer(types.ID(id), peerURLs)
}

// replay rebuilds the in-memory log and the member table from disk, refuses
// a member that was removed from the cluster, and returns the member table
// as the committed entries on disk leave it (what Start checks against how
// the node was started).
func (n *Node) replay(ds *diskState) (*membership, error) {
	if ds.snapshot != nil {
		members, appData, streamed, err := decodeEnvelope(ds.snapshot.GetData())
		if err == nil && streamed {
			err = fmt.Errorf("%w: stored snapshot lacks its data", errBadEnvelope)
		}
		if err != nil {
			return nil, fmt.Errorf("load snapshot: %w", err)
		}
		if err := n.raftStorage.ApplySnapshot(metadataOnly(ds.snapshot)); err != nil {
			return nil, fmt.Errorf("load snapshot: %w", err)
		}
		md := ds.snapshot.GetMetadata()
		n.members = members
		n.confState = md.GetConfState()
		n.snapshotIndex, n.appliedIndex = md.GetIndex(), md.GetIndex()
		n.applied.Store(md.GetIndex())
		n.initialCommit = &Commit{Snapshot: appData, Index: md.GetIndex(), Done: make(chan struct{})}
	}
	// Replaying from an older snapshot (rewind) changes what is applied
	// again, not when the next snapshot is due.
	n.snapshotIndex = max(n.snapshotIndex, ds.newestSnapshot)
	if err := n.raftStorage.SetHardState(ds.hardState); err != nil {
		return nil, fmt.Errorf("load hard state: %w", err)
	}
	// Raft puts a hard state in a Ready only when it changes, so until the
	// next election the term on disk is the current one: publish it now,
	// or status, X-Raft-Term and raftkv_term would say 0 until then.
	n.lead.setTerm(ds.hardState.GetTerm())
	n.publishStatus(raft.StateFollower, ds.hardState.GetCommit())
	if err := n.raftStorage.Append(ds.entries); err != nil {
		return nil, fmt.Errorf("load entries: %w", err)
	}
	// The committed entries will be applied again once raft starts; look
	// ahead at their configuration changes so that a member whose removal is
	// already committed refuses to start instead of rejoining.
	future, err := lookAhead(n.members, ds.entries, ds.hardState.GetCommit())
	if err != nil {
		return nil, err
	}
	if future.isRemoved(n.cfg.ID) {
		return nil, fmt.Errorf("%w: member %d; wipe %s and add it back as a new member", ErrRemoved, n.cfg.ID, n.cfg.DataDir)
	}
	return future, nil
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
func (n *Node) Leader() uint64 { return n.lead.current() }

// Term returns the current raft term.
func (n *Node) Term() uint64 { return n.lead.currentTerm() }

// LeaderChanged returns the current leader (0: none known) and term, and a
// channel closed at the next change of leader. The term is recorded before
// the leader, so a new leader is always seen with its term.
func (n *Node) LeaderChanged() (leader, term uint64, changed <-chan struct{}) {
	return n.lead.watch()
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

// Status returns the node's raft state as of its last Ready or finished
// snapshot.
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
		Leader:    n.lead.current(),
		Term:      n.lead.currentTerm(),
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

// stopping reports whether the node has begun to stop.
func (n *Node) stopping() bool {
	select {
	case <-n.stopc:
		return true
	default:
		return false
	}
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
		n.removed.Store(true) // before stopc closes: a pending removal of self reads it
		if merr := n.storage.markRemoved(); merr != nil {
			n.lg.Error("record removal in the data dir", zap.Error(merr))
		}
	} else if err != nil {
		n.setStopFault(err) // before anything stops: /readyz says why meanwhile
		n.lg.Error("raft node failed; stopping", zap.Error(err))
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
