package raftnode

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// snapshotResult is the outcome of a snapshot written in the background.
type snapshotResult struct {
	index uint64
	err   error
}

// maybeSnapshot starts a snapshot once SnapshotCount entries were applied
// since the last one. The loop only captures the state, which is cheap;
// encoding it and writing it to disk happen on another goroutine, so that a
// large store does not stop the loop from ticking and heartbeating. One
// snapshot is in flight at a time; finishSnapshot completes it. While a
// restart applies again the entries before its newest snapshot (rewind),
// applied is below the snapshot index.
func (n *Node) maybeSnapshot() error {
	if n.snapshotInFlight || n.appliedIndex <= n.snapshotIndex || n.appliedIndex-n.snapshotIndex < n.cfg.SnapshotCount {
		return nil
	}
	if !n.snapshotRetryAt.IsZero() && time.Now().Before(n.snapshotRetryAt) {
		return nil
	}
	select {
	case <-n.lastDone:
	case <-n.stopc:
		return ErrStopped
	}
	write := n.cfg.StateMachine.Capture()
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
		err := n.writeSnapshot(index, confState, members, write)
		select {
		case n.snapshotDone <- snapshotResult{index: index, err: err}:
		case <-n.stopc:
		}
	}()
	return nil
}

// writeSnapshot encodes and persists a snapshot at index. MemoryStorage and
// the WAL lock internally, so this may run beside the Ready loop.
func (n *Node) writeSnapshot(index uint64, cs *raftpb.ConfState, members *membership, write func(io.Writer) error) error {
	start := time.Now()
	// raft's copy holds only the metadata (see metadataOnly).
	snapshot, err := n.raftStorage.CreateSnapshot(index, cs, nil)
	if err != nil {
		return fmt.Errorf("create snapshot: %w", err)
	}
	// The envelope's header, then the state streamed from the frozen store
	// to the file: the encoded state is never held whole in memory.
	header := envelopeHeader(envelopeMagic, members)
	size, err := n.storage.saveSnapshotFrom(snapshot.GetMetadata(), func(w io.Writer) error {
		if _, err := w.Write(header); err != nil {
			return err
		}
		return write(w)
	})
	if err != nil {
		return err
	}
	n.metrics.snapshotDuration.Observe(time.Since(start).Seconds())
	n.metrics.snapshotSize.Observe(float64(size))
	n.lg.Info("saved snapshot", zap.Uint64("index", index), zap.Int64("bytes", size))
	return nil
}

// finishSnapshot completes a background snapshot: it compacts the in-memory
// log, keeping SnapshotCatchUpEntries for slow followers, and purges old
// files.
func (n *Node) finishSnapshot(res snapshotResult) error {
	n.snapshotInFlight = false
	if res.err != nil && outOfFiles(res.err) {
		// Transient: clients or peers hold the descriptors for now. The
		// log keeps growing until a snapshot succeeds, which costs memory,
		// not correctness; a file half written is removed by the snapshotter
		// or ignored on load.
		n.snapshotBackoff = min(max(2*n.snapshotBackoff, snapshotRetryMin), snapshotRetryMax)
		n.snapshotRetryAt = time.Now().Add(n.snapshotBackoff)
		n.lg.Warn("snapshot failed for want of file descriptors; retrying later",
			zap.Uint64("index", res.index), zap.Duration("retry-in", n.snapshotBackoff), zap.Error(res.err))
		return nil
	}
	if res.err != nil {
		return res.err
	}
	n.snapshotBackoff, n.snapshotRetryAt = 0, time.Time{}
	if res.index <= n.snapshotIndex {
		return nil
	}
	n.snapshotIndex = res.index
	compactIndex := uint64(1)
	if res.index > n.cfg.SnapshotCatchUpEntries {
		compactIndex = res.index - n.cfg.SnapshotCatchUpEntries
	}
	if err := n.raftStorage.Compact(compactIndex); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return fmt.Errorf("compact log: %w", err)
	}
	n.purge()
	return nil
}

// The backoff of a snapshot that failed for want of file descriptors is
// snapshotRetryMin doubling to snapshotRetryMax (fault.go), as for a
// snapshot transfer a member could not store.

// outOfFiles reports whether err is the process's or the system's open file
// limit (EMFILE, ENFILE): a condition that passes when connections close.
func outOfFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
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

// metadataOnly is the copy of a snapshot that raft's MemoryStorage keeps.
// Raft reads a stored snapshot only to send it, and sendSnapshot sends the
// current state instead, so the data would be dead weight: MemoryStorage
// would hold it for as long as the snapshot is the newest and copy all of it
// each time raft asked for it.
func metadataOnly(s *raftpb.Snapshot) *raftpb.Snapshot {
	return &raftpb.Snapshot{Metadata: s.GetMetadata()}
}

// raftStorage is the storage raft reads: MemoryStorage, except that it
// answers raft.ErrSnapshotTemporarilyUnavailable where MemoryStorage would
// hand out an empty snapshot.
//
// Raft asks for a snapshot when a follower needs entries the leader's log
// does not hold. Before the first snapshot MemoryStorage answers with an
// empty one, which raft refuses with a panic ("need non-empty snapshot").
// A follower that reports entries past the end of the leader's log, which
// only a forged message can make it do, is such a follower: one message
// on the peer port took the leader down. Raft's Storage contract allows
// "temporarily unavailable", on which raft retries later instead.
type raftStorage struct{ *raft.MemoryStorage }

func (s raftStorage) Snapshot() (*raftpb.Snapshot, error) {
	snap, err := s.MemoryStorage.Snapshot()
	if err == nil && raft.IsEmptySnap(snap) {
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	return snap, err
}
