package raftnode

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/server/v3/etcdserver/api/snap"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

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
	// Raft reports a hard state only when it changes: until then the
	// commit index is the one on disk, which replay published.
	commit := n.Status().Commit
	for {
		select {
		case <-ticker.C:
			n.node.Tick()
		case rd := <-n.node.Ready():
			// The term first, so that whoever sees the new leader sees its
			// term too.
			if hs := rd.HardState; hs != nil && hs.Term != nil {
				n.lead.setTerm(hs.GetTerm())
			}
			if rd.SoftState != nil {
				if lead := rd.SoftState.Lead; lead != n.lead.current() {
					n.lg.Info("leader changed", zap.Uint64("leader", lead), zap.Uint64("term", n.lead.currentTerm()),
						zap.String("raft-state", rd.SoftState.RaftState.String()))
					n.lead.setLeader(lead)
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
				n.reads.deliver(rs)
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
			// After Advance: raft refuses to campaign while a committed
			// configuration change is not applied, and learns that it is
			// applied from Advance.
			if n.campaignAfter != 0 && n.appliedIndex >= n.campaignAfter {
				n.campaignAfter = 0
				n.campaignAlone()
			}
			if n.removedSelf {
				n.lg.Info("this member was removed from the cluster; stopping")
				return ErrRemoved
			}
		case res := <-n.snapshotDone:
			if err := n.finishSnapshot(res); err != nil {
				return err
			}
			// An idle node has no next Ready to publish the new index.
			n.publishStatus(raftState, commit)
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
	var received receivedSnapshot
	if hasSnap {
		if err := n.awaitSnapshot(); err != nil {
			return err
		}
		// Check the snapshot, and fetch its streamed data, before it is
		// made durable: a stored snapshot that cannot be loaded would stop
		// every later start.
		var err error
		if received, err = n.completeSnapshot(rd.Snapshot); err != nil {
			return err
		}
		header := envelopeHeader(envelopeMagic, received.members)
		if err := n.storage.saveSnapshot(received.md, header, received.appData); err != nil {
			return err
		}
	}
	start := time.Now()
	if err := n.storage.wal.Save(rd.HardState, rd.Entries); err != nil {
		return fmt.Errorf("save wal: %w", err)
	}
	if rd.MustSync {
		n.metrics.walFsync.Observe(time.Since(start).Seconds())
		// Before a follower acknowledges what it saved: a synced file in
		// a deleted directory is durable nowhere.
		if err := n.storage.checkWALDir(); err != nil {
			return err
		}
	}
	if hasSnap {
		// The hard state must be durable before raft forgets the log the
		// snapshot replaces.
		if err := n.storage.wal.Sync(); err != nil {
			return fmt.Errorf("sync wal: %w", err)
		}
		if err := n.raftStorage.ApplySnapshot(metadataOnly(rd.Snapshot)); err != nil {
			return fmt.Errorf("apply snapshot: %w", err)
		}
		if err := n.applySnapshot(received); err != nil {
			return err
		}
	}
	if err := n.raftStorage.Append(rd.Entries); err != nil {
		return fmt.Errorf("append entries: %w", err)
	}
	for _, e := range rd.Entries {
		if e.GetType() != raftpb.EntryNormal {
			n.lastConfIndex.Store(e.GetIndex())
		}
	}
	return nil
}

// receivedSnapshot is a snapshot from the leader, decoded.
type receivedSnapshot struct {
	md      *raftpb.SnapshotMetadata
	members *membership
	appData []byte
}

// completeSnapshot checks a snapshot received from the leader and decodes
// it; when its state machine data was streamed, the data comes from the file
// rafthttp saved.
func (n *Node) completeSnapshot(snapshot *raftpb.Snapshot) (receivedSnapshot, error) {
	md := snapshot.GetMetadata()
	members, appData, streamed, err := decodeEnvelope(snapshot.GetData())
	if err != nil {
		return receivedSnapshot{}, fmt.Errorf("received snapshot at %d: %w", md.GetIndex(), err)
	}
	if streamed {
		if appData, err = n.storage.readSnapDB(md.GetIndex()); err != nil {
			return receivedSnapshot{}, err
		}
	}
	return receivedSnapshot{md: md, members: members, appData: appData}, nil
}

// applySnapshot replaces the member table and the state machine's state with
// a snapshot received from the leader.
func (n *Node) applySnapshot(s receivedSnapshot) error {
	index := s.md.GetIndex()
	if index <= n.appliedIndex {
		return fmt.Errorf("snapshot index %d is not after applied index %d", index, n.appliedIndex)
	}
	n.lg.Info("applying snapshot from leader", zap.Uint64("index", index))
	n.metrics.snapshotsReceived.Inc()
	n.storage.releaseSnapDBs(index)
	n.setMembers(s.members)
	n.confState = s.md.GetConfState()
	n.snapshotIndex = index
	if err := n.publish(Commit{Snapshot: s.appData, Index: index, Done: make(chan struct{})}); err != nil {
		return err
	}
	n.purge()
	return nil
}

// purge removes old files. A failure costs disk space, not correctness, so it
// is logged and tried again after the next snapshot.
func (n *Node) purge() {
	if err := n.storage.purge(n.cfg.MaxSnapshots, n.cfg.MaxWALs, n.snapshotIndex); err != nil {
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
	// A member that joined with a fresh data dir dialed every URL of its
	// --cluster, some of them members removed since: a snapshot's table is
	// the first it hears of that, and it must stop dialing them.
	for id := range m.removed {
		if id != n.cfg.ID && n.transport.Get(types.ID(id)) != nil {
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
		return fmt.Errorf("first committed index %d leaves a gap after applied index %d", first, n.appliedIndex)
	}
	batch := make([]Entry, 0, len(ents))
	for _, e := range ents {
		if e.GetIndex() <= n.appliedIndex {
			continue
		}
		switch e.GetType() {
		case raftpb.EntryNormal:
			switch kind, data := decodeFrame(e.GetData()); kind {
			case kindAttributes:
				n.applyAttributes(data)
				n.publishView(e.GetIndex())
			case kindCommand:
				batch = append(batch, Entry{Index: e.GetIndex(), Data: data})
			}
		case raftpb.EntryConfChange:
			cc := &raftpb.ConfChange{}
			if err := proto.Unmarshal(e.GetData(), cc); err != nil {
				return fmt.Errorf("decode configuration change at %d: %w", e.GetIndex(), err)
			}
			// Before the proposer hears of it, so that its next change is
			// not refused as pending.
			n.confApplied.Store(e.GetIndex())
			n.applyConfChange(cc, e.GetIndex())
		default:
			return fmt.Errorf("unexpected entry type %s at %d", e.GetType(), e.GetIndex())
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
}

// publishView publishes the member table to its readers (Members, the peer
// guard, membership requests) once the entry at index is applied. While a
// rewound start applies again the entries its newest snapshot already held
// (history.go), readers keep the table those entries lead to, which Start
// published, instead of seeing it go back and forward again.
func (n *Node) publishView(index uint64) {
	if index >= n.replayTo {
		n.view.Store(n.members.clone())
	}
}

// applyConfChange decides a committed configuration change against the
// member table. A change the table rejects is still handed to raft with node
// id 0, which raft treats as a no-op, so that raft and the table agree.
func (n *Node) applyConfChange(cc *raftpb.ConfChange, index uint64) {
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
		n.publishView(index)
		n.lg.Info("applied configuration change", zap.Stringer("type", cc.GetType()),
			zap.Uint64("node", id), zap.ByteString("context", cc.GetContext()))
		switch {
		case cc.GetType() == raftpb.ConfChangeRemoveNode && id == n.cfg.ID:
			n.removedSelf = true
		case index < n.replayTo:
			// Applied again by a rewound start, whose transport already
			// has the members the committed entries lead to (Start).
		case cc.GetType() == raftpb.ConfChangeRemoveNode:
			if n.transport.Get(types.ID(id)) != nil { // a forced-out member never was (addPeer)
				n.transport.RemovePeer(types.ID(id))
			}
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
// snapshot sender, rebuilt from the current state (see sendSnapshot).
func (n *Node) send(msgs []*raftpb.Message) {
	out := msgs[:0:0]
	for _, m := range msgs {
		if m.GetType() == raftpb.MsgSnap {
			n.sendSnapshot(m)
			continue
		}
		out = append(out, m)
	}
	n.transport.Send(out)
}

// sendSnapshot sends a follower a snapshot of the current applied state, as
// etcd does, rather than the stored one raft picked: a stored snapshot can
// predate the configuration change that added the follower, and a member
// refuses a snapshot whose configuration does not include it. The message
// carries the member table; the state machine's data is streamed after it,
// so its size is not bounded by rafthttp's message limits. Encoding happens
// on another goroutine; the loop only captures the state.
func (n *Node) sendSnapshot(m *raftpb.Message) {
	if n.snapshotDelayed(m.GetTo()) {
		return
	}
	select {
	case <-n.lastDone: // the state machine holds everything up to appliedIndex
	case <-n.stopc:
		n.node.ReportSnapshot(m.GetTo(), raft.SnapshotFailure)
		return
	}
	index := n.appliedIndex
	term, err := n.raftStorage.Term(index)
	if err != nil || index < m.GetSnapshot().GetMetadata().GetIndex() {
		n.lg.Warn("cannot send a current snapshot", zap.Uint64("to", m.GetTo()), zap.Uint64("applied", index), zap.Error(err))
		n.node.ReportSnapshot(m.GetTo(), raft.SnapshotFailure)
		return
	}
	write := n.cfg.StateMachine.Capture()
	confState := proto.Clone(n.confState).(*raftpb.ConfState)
	members := n.members.clone()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		appData, err := encodeAll(write)
		if err != nil {
			n.lg.Error("cannot send snapshot", zap.Uint64("to", m.GetTo()), zap.Error(err))
			n.node.ReportSnapshot(m.GetTo(), raft.SnapshotFailure)
			return
		}
		select {
		case <-n.stopc:
			return // the transport is going away
		default:
		}
		// Raft hands out a copy of its message, so it is ours to change.
		m.Snapshot = &raftpb.Snapshot{
			Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(term), ConfState: confState},
			Data:     envelopeHeader(streamedEnvelopeMagic, members),
		}
		n.transport.SendSnapshot(snap.NewMessage(m, io.NopCloser(bytes.NewReader(appData)), int64(len(appData))))
	}()
}

// campaignAlone starts an election at once on a member that
// Config.ForceNewCluster left the only voter: it needs no other vote, so
// waiting out an election timeout would only delay the recovery. Failing
// costs that timeout, after which raft campaigns by itself.
func (n *Node) campaignAlone() {
	ctx, cancel := context.WithTimeout(context.Background(), n.electionTimeout())
	defer cancel()
	if err := n.node.Campaign(ctx); err != nil {
		n.lg.Warn("campaign after --force-new-cluster", zap.Error(err))
	}
}

// encodeAll returns what write writes, in a buffer of exactly its size.
func encodeAll(write func(io.Writer) error) ([]byte, error) {
	var count countingWriter
	if err := write(&count); err != nil {
		return nil, err
	}
	buf := bytes.NewBuffer(make([]byte, 0, int(count)))
	if err := write(buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
