package raftnode

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// learnerReadyLag is how far, in entries, a learner may trail the leader's
// commit index and still be promoted: under load a healthy follower trails by
// a few in-flight batches, never by thousands.
const learnerReadyLag = 1000

// Progress is the leader's view of a member's replication.
type Progress struct {
	Match uint64 `json:"match"`
	Next  uint64 `json:"next"`
	State string `json:"state"` // probe, replicate or snapshot
}

// Progress returns the leader's view of every member's replication, or nil
// when this node is not the leader.
func (n *Node) Progress() map[uint64]Progress {
	st := n.node.Status()
	if st.RaftState != raft.StateLeader {
		return nil
	}
	out := make(map[uint64]Progress, len(st.Progress))
	for id, pr := range st.Progress {
		out[id] = Progress{Match: pr.Match, Next: pr.Next, State: progressState(pr.State)}
	}
	return out
}

// progressState names a replication state as the API documents it.
func progressState(s tracker.StateType) string {
	switch s {
	case tracker.StateReplicate:
		return "replicate"
	case tracker.StateSnapshot:
		return "snapshot"
	default:
		return "probe"
	}
}

// IsLeader reports whether this node leads.
func (n *Node) IsLeader() bool { return n.lead.isSelf() }

// Started reports whether the node has a live connection to member id (this
// node itself counts as started).
func (n *Node) Started(id uint64) bool {
	return id == n.cfg.ID || !n.transport.ActiveSince(types.ID(id)).IsZero()
}

// AddMember adds a member with the given peer URLs (a learner when learner
// is set) and returns it once the change is applied on this node. An id of 0
// picks an unused one.
func (n *Node) AddMember(ctx context.Context, id uint64, peerURLs []string, learner bool) (Member, error) {
	if err := n.checkPeerURLs(peerURLs); err != nil {
		return Member{}, err
	}
	if id > MaxMemberID {
		return Member{}, fmt.Errorf("%w no larger than %d (2^53-1), not %d: ids above it break JSON clients that read numbers as doubles, and an id-less add takes the highest id + 1",
			ErrInvalidMemberID, uint64(MaxMemberID), id)
	}
	if id == 0 {
		id = n.unusedID()
	}
	// Raft reads adding an existing learner as a voter as its promotion;
	// that goes through PromoteMember and its readiness check only.
	if _, exists := n.view.Load().members[id]; exists {
		return Member{}, ErrMemberExists
	}
	if err := n.checkPeerAddrs(ctx, id, peerURLs); err != nil {
		return Member{}, err
	}
	typ := raftpb.ConfChangeAddNode
	if learner {
		typ = raftpb.ConfChangeAddLearnerNode
	}
	cc := &raftpb.ConfChange{Type: typ.Enum(), NodeId: proto.Uint64(id), Context: encodeContext(peerURLs)}
	if err := n.changeMembership(ctx, cc); err != nil {
		return Member{}, err
	}
	return n.member(id)
}

// checkPeerURLs checks the peer URLs of a member to add or update: valid, and
// https exactly when this cluster's peers use TLS.
func (n *Node) checkPeerURLs(urls []string) error {
	if err := validatePeerURLs(urls); err != nil {
		return err
	}
	for _, u := range urls {
		if err := checkPeerScheme(u, n.cfg.PeerTLS.Enabled()); err != nil {
			return fmt.Errorf("%w %w", ErrInvalidPeerURL, err)
		}
	}
	return nil
}

// PromoteMember makes a learner a voter once it has caught up with the
// leader. Only the leader can tell; elsewhere it returns ErrNotLeader.
func (n *Node) PromoteMember(ctx context.Context, id uint64) (Member, error) {
	mem, ok := n.view.Load().members[id]
	if !ok {
		if n.view.Load().isRemoved(id) {
			return Member{}, ErrMemberRemoved
		}
		return Member{}, ErrMemberNotFound
	}
	if !mem.IsLearner {
		return Member{}, fmt.Errorf("%w: it votes already", ErrNotLearner)
	}
	if err := n.checkLearnerReady(id); err != nil {
		return Member{}, err
	}
	cc := &raftpb.ConfChange{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: proto.Uint64(id), Context: encodeContext(mem.PeerURLs)}
	if err := n.changeMembership(ctx, cc); err != nil {
		return Member{}, err
	}
	return n.member(id)
}

// UpdateMember replaces a member's peer URLs.
func (n *Node) UpdateMember(ctx context.Context, id uint64, peerURLs []string) (Member, error) {
	if err := n.checkPeerURLs(peerURLs); err != nil {
		return Member{}, err
	}
	if _, exists := n.view.Load().members[id]; exists {
		if err := n.checkPeerAddrs(ctx, id, peerURLs); err != nil {
			return Member{}, err
		}
	}
	cc := &raftpb.ConfChange{Type: raftpb.ConfChangeUpdateNode.Enum(), NodeId: proto.Uint64(id), Context: encodeContext(peerURLs)}
	if err := n.changeMembership(ctx, cc); err != nil {
		return Member{}, err
	}
	return n.member(id)
}

// RemoveMember removes a member and returns once the change is applied on
// this node. A leader removing itself first hands leadership to the most
// caught-up voter, so that writes keep flowing; it then stops.
func (n *Node) RemoveMember(ctx context.Context, id uint64) error {
	cc := &raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(id)}
	if id == n.cfg.ID && n.IsLeader() && n.view.Load().voters() > 1 {
		if err := n.view.Load().check(cc); err != nil {
			return err
		}
		if _, err := n.TransferLeadership(ctx, 0); err != nil {
			return fmt.Errorf("hand over leadership before removing the leader: %w", err)
		}
	}
	return n.changeMembership(ctx, cc)
}

func (n *Node) member(id uint64) (Member, error) {
	m, ok := n.view.Load().members[id]
	if !ok {
		return Member{}, fmt.Errorf("%w (removed again meanwhile)", ErrMemberNotFound)
	}
	return m.clone(), nil
}

// MaxMemberID is the largest id AddMember takes. Every id up to it survives
// JSON in clients that read numbers as doubles (JavaScript's largest safe
// integer), and it leaves room for the ids that id-less adds pick, the
// highest id used + 1, so that they never run out (2^64-1 had no successor).
const MaxMemberID = 1<<53 - 1

// unusedID picks the id after the highest one ever used, so that generated
// ids stay small and, as in raftexample, can be a position in --cluster.
// Past MaxMemberID (an id an older version accepted) it picks the smallest
// id never used instead.
func (n *Node) unusedID() uint64 {
	view := n.view.Load()
	var highest uint64
	for id := range view.members {
		highest = max(highest, id)
	}
	for id := range view.removed {
		highest = max(highest, id)
	}
	if highest < MaxMemberID {
		return highest + 1
	}
	id := uint64(1)
	for view.members[id].ID != 0 || view.isRemoved(id) {
		id++
	}
	return id
}

// checkLearnerReady refuses to promote a learner that trails the leader.
func (n *Node) checkLearnerReady(id uint64) error {
	st := n.node.Status()
	if st.RaftState != raft.StateLeader {
		return ErrNotLeader
	}
	pr, ok := st.Progress[id]
	if !ok {
		return ErrMemberNotFound
	}
	commit := st.HardState.GetCommit()
	if pr.State == tracker.StateReplicate && pr.Match+learnerReadyLag >= commit {
		return nil
	}
	if !n.Started(id) {
		// Its progress says nothing a user can act on: the process is not
		// running (or cannot reach the leader).
		m, _ := n.member(id)
		return fmt.Errorf("%w: it has not started, or the leader cannot reach it; start it with --join and its peer URL %s, then promote it once it has caught up",
			ErrLearnerNotReady, strings.Join(m.PeerURLs, ","))
	}
	return fmt.Errorf("%w: it has %d of %d committed entries (replication state %s); promote it once it has caught up", ErrLearnerNotReady, pr.Match, commit, progressState(pr.State))
}

// checkQuorum is etcd's strict reconfiguration check: after the change, the
// voters this node is connected to (itself included) must still form a
// quorum, or the cluster would stop making progress.
func (n *Node) checkQuorum(cc *raftpb.ConfChange) error {
	view := n.view.Load()
	voters, started := 0, 0
	for id, m := range view.members {
		if m.IsLearner && !(cc.GetType() == raftpb.ConfChangeAddNode && id == cc.GetNodeId()) {
			continue
		}
		if cc.GetType() == raftpb.ConfChangeRemoveNode && id == cc.GetNodeId() {
			continue
		}
		voters++
		if n.Started(id) {
			started++
		}
	}
	if cc.GetType() == raftpb.ConfChangeAddNode {
		if _, exists := view.members[cc.GetNodeId()]; !exists {
			voters++ // a new voter, not started yet
		}
	}
	if quorum := voters/2 + 1; started < quorum {
		return fmt.Errorf("%w: after the change %d of %d voters would be started, and a quorum needs %d; start the stopped members first", ErrNotEnoughStarted, started, voters, quorum)
	}
	return nil
}

func (n *Node) changeMembership(ctx context.Context, cc *raftpb.ConfChange) error {
	if n.lead.current() == raft.None {
		return ErrNoLeader
	}
	// Check against the current table first for a clear answer; the Ready
	// loop checks again when the change is applied, which is what counts.
	if err := n.view.Load().check(cc); err != nil {
		return err
	}
	if err := n.checkQuorum(cc); err != nil {
		return err
	}
	// Raft refuses a second configuration change while one is pending and
	// silently turns it into an empty entry; serialising this node's changes
	// and refusing while one is in the log avoids that.
	n.confMu.Lock()
	defer n.confMu.Unlock()
	if n.lastConfIndex.Load() > max(n.confApplied.Load(), n.applied.Load()) {
		return ErrConfChangePending
	}
	if err := n.awaitLeaderSettled(ctx); err != nil {
		return err
	}

	reqID := n.idGen.Next()
	cc.Id = proto.Uint64(reqID)
	applied := n.confWait.Register(reqID)
	// Unregisters the waiter on every early return; a no-op once triggered.
	defer n.confWait.Trigger(reqID, nil)
	unknown := fmt.Errorf("%w: the membership change may or may not be applied; check the member list before retrying", ErrTimeout)
	req := confChangeRequest{cc: cc, result: make(chan error, 1)}
	select {
	case n.confChangeC <- req:
	case <-ctx.Done():
		return contextError(ctx)
	case <-n.stopc:
		return ErrStopped
	}
	result := func(res any) error {
		if err, ok := res.(error); ok {
			return err
		}
		return nil
	}
	// From here raft may have the change: stopping or timing out leaves
	// its outcome unknown, unless it was applied just before.
	stopped := func() error {
		select {
		case res := <-applied:
			return result(res)
		default:
		}
		// A member may learn of its own removal from a peer before it
		// applies the change itself: then the change did happen.
		if cc.GetType() == raftpb.ConfChangeRemoveNode && cc.GetNodeId() == n.cfg.ID && n.removed.Load() {
			return nil
		}
		return unknown
	}
	select {
	case err := <-req.result:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return unknown
	case <-n.stopc:
		return stopped()
	}
	select {
	case res := <-applied:
		return result(res)
	case <-ctx.Done():
		return stopped()
	case <-n.stopc:
		return stopped()
	}
}

// awaitLeaderSettled waits until the leader has committed an entry of its
// own term and this node has applied it. Raft silently drops a configuration
// change proposed to a leader that has not yet applied the entries of its own
// term (it cannot tell whether one is pending), which is exactly the moment
// after an election or a leadership transfer; a ReadIndex succeeds only once
// that entry is committed.
func (n *Node) awaitLeaderSettled(ctx context.Context) error {
	index, err := n.ReadIndex(ctx)
	if err != nil {
		return err
	}
	tick := time.NewTicker(n.cfg.TickInterval)
	defer tick.Stop()
	for n.applied.Load() < index {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return contextError(ctx)
		case <-n.stopc:
			return ErrStopped
		}
	}
	return nil
}

// TransferLeadership hands leadership to member to (0: the most caught-up
// voter) and returns the new leader once it leads. Only the leader can.
func (n *Node) TransferLeadership(ctx context.Context, to uint64) (uint64, error) {
	st := n.node.Status()
	if st.RaftState != raft.StateLeader {
		return 0, ErrNotLeader
	}
	view := n.view.Load()
	if to == 0 {
		var best uint64
		for id, pr := range st.Progress {
			if m, ok := view.members[id]; ok && id != n.cfg.ID && !m.IsLearner && n.Started(id) && (best == 0 || pr.Match > st.Progress[best].Match) {
				best = id
			}
		}
		if best == 0 {
			return 0, fmt.Errorf("%w: no other started voter to hand leadership to", ErrNotEnoughStarted)
		}
		to = best
	}
	m, ok := view.members[to]
	switch {
	case !ok:
		return 0, ErrMemberNotFound
	case m.IsLearner:
		return 0, fmt.Errorf("%w: it is a learner", ErrNotVoter)
	case to == n.cfg.ID:
		return to, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*n.electionTimeout())
	defer cancel()
	lead, _, changed := n.LeaderChanged()
	n.node.TransferLeadership(ctx, n.cfg.ID, to)
	for lead != to {
		select {
		case <-changed:
			lead, _, changed = n.LeaderChanged()
		case <-ctx.Done():
			return 0, fmt.Errorf("%w: leadership did not move to %d in time", ErrTimeout, to)
		case <-n.stopc:
			return 0, ErrStopped
		}
	}
	return to, nil
}

// handOverLeadership moves leadership away before a graceful stop, so the
// cluster does not wait out an election timeout. Failing is harmless: the
// others elect a leader on their own.
func (n *Node) handOverLeadership() {
	select {
	case <-n.stopc:
		return // already stopping or stopped
	default:
	}
	if !n.IsLeader() || n.view.Load().voters() < 2 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.electionTimeout())
	defer cancel()
	if to, err := n.TransferLeadership(ctx, 0); err != nil {
		n.lg.Warn("could not hand over leadership before stopping", zap.Error(err))
	} else {
		n.lg.Info("handed over leadership before stopping", zap.Uint64("to", to))
	}
}

// contextError turns a context's end into the node's errors.
func contextError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrTimeout
	}
	return ctx.Err()
}
