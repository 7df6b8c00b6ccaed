package raftnode

import (
	"fmt"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.etcd.io/etcd/server/v3/etcdserver/api/snap"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// A restarted member replays only the log after its newest snapshot, so
// whatever the state machine derives from the entries it applies rather
// than from its state (kvstore's watch history) would start at that
// snapshot. With Config.HistoryEntries, rewind moves the start of the replay
// back to an older snapshot the data dir still holds: the entries between
// the two are applied again, exactly as if the newer snapshot had never
// been taken.
//
// Why that is safe. The older snapshot was this member's start point when
// it was the newest, and stays one as long as the log after it in the WAL
// is still the log raft kept. Raft appends, and overwrites only entries
// past its commit index; what replaces a log's committed prefix is a
// leader's snapshot (MsgSnap), which raft installs only when the log does
// not hold the snapshot's last entry with its term (raft.restore), and which
// leaves a snapshot record in the WAL. So the older snapshot is used only
// when, read from it, the log is contiguous up to the hard state's commit and
// holds, for every snapshot record after it up to the newest snapshot, that
// record's entry with that record's term: no leader's snapshot came between,
// and every entry up to the newest snapshot is committed, since the newest
// snapshot is. The log after the newest snapshot is the one a start without
// the rewind reads, compared record by record. Anything else (no snapshot
// file, purged segments, a read error, a gap, another term) leaves the
// replay at the newest snapshot, as before.
//
// The newest snapshot stays the node's snapshot index (diskState.
// newestSnapshot): the next snapshot is taken SnapshotCount entries after it,
// as without the rewind, so the entries applied again write no snapshot of
// their own. The WAL stays open for writing from the newest snapshot: what
// is read from the older one is read-only, and nothing on disk changes.
//
// Cost: the older snapshot file, the WAL from its segment on, read once
// more, and at most 2*HistoryEntries entries applied again (historyStart).
// Purge keeps the WAL from the oldest snapshot file it keeps (storage.purge),
// so with MaxSnapshots > 1 an older snapshot usually has its WAL.

// rewind moves ds's replay back to an older snapshot so that at least want
// committed entries are applied again, when the data dir allows it (see
// above); otherwise it leaves ds as it is.
func (s *storage) rewind(ds *diskState, want uint64) {
	if want == 0 || ds.snapshot == nil {
		return // without a snapshot the replay starts at the WAL's beginning
	}
	newest := ds.snapshot.GetMetadata()
	commit := ds.hardState.GetCommit()
	from, ok := historyStart(ds.walSnaps, newest.GetIndex(), commit, want, s.hasSnapFile)
	if !ok {
		return
	}
	start := time.Now()
	older, ents, err := s.readFrom(from, ds)
	if err != nil {
		s.lg.Info("replaying from the newest snapshot only: the older one cannot rebuild the recent history",
			zap.Uint64("older-snapshot", from.GetIndex()), zap.Uint64("newest-snapshot", newest.GetIndex()), zap.Error(err))
		return
	}
	ds.newestSnapshot = newest.GetIndex()
	ds.snapshot, ds.entries = older, ents
	s.lg.Info("replaying from an older snapshot to rebuild the recent history",
		zap.Uint64("from", from.GetIndex()), zap.Uint64("newest-snapshot", newest.GetIndex()),
		zap.Uint64("commit", commit), zap.Uint64("entries-again", newest.GetIndex()-from.GetIndex()),
		zap.Duration("read", time.Since(start)))
}

// historyStart picks the snapshot record to replay from, among those older
// than the newest snapshot: the newest that leaves want committed entries to
// apply, or, when none within reach does, the oldest, which leaves as many
// as the files allow. It never reaches back more than 2*want entries before
// commit, which bounds the cost of a start. usable reports whether a record
// can be loaded.
func historyStart(walSnaps []*walpb.Snapshot, newest, commit, want uint64, usable func(*walpb.Snapshot) bool) (*walpb.Snapshot, bool) {
	if commit < newest || commit-newest >= want {
		return nil, false // the log after the newest snapshot is enough
	}
	target := commit - min(commit, want)
	floor := target - min(target, want)
	var below, oldest *walpb.Snapshot
	for _, r := range walSnaps {
		i := r.GetIndex()
		if i < floor || i >= newest || !usable(r) {
			continue
		}
		if i <= target && (below == nil || i > below.GetIndex()) {
			below = r
		}
		if oldest == nil || i < oldest.GetIndex() {
			oldest = r
		}
	}
	if below != nil {
		return below, true
	}
	return oldest, oldest != nil
}

// hasSnapFile reports whether the snapshot a WAL record names has its file.
// The record at index 0, which starts every WAL, names none: replaying from
// it is replaying the whole log.
func (s *storage) hasSnapFile(r *walpb.Snapshot) bool {
	if r.GetIndex() == 0 {
		return true
	}
	return fileutil.Exist(filepath.Join(s.snapDir, fmt.Sprintf(snapFileName, r.GetTerm(), r.GetIndex())))
}

// readFrom loads the snapshot from names (nil for index 0) and the log after
// it, and returns them once the log is found to join the one ds holds.
func (s *storage) readFrom(from *walpb.Snapshot, ds *diskState) (*raftpb.Snapshot, []*raftpb.Entry, error) {
	var older *raftpb.Snapshot
	if from.GetIndex() > 0 {
		path := filepath.Join(s.snapDir, fmt.Sprintf(snapFileName, from.GetTerm(), from.GetIndex()))
		sn, err := snap.Read(s.lg, path)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", path, err)
		}
		if md := sn.GetMetadata(); md.GetIndex() != from.GetIndex() || md.GetTerm() != from.GetTerm() {
			return nil, nil, fmt.Errorf("%s holds the snapshot at index %d term %d", path, md.GetIndex(), md.GetTerm())
		}
		// replay refuses a start on a snapshot it cannot decode.
		_, _, streamed, err := decodeEnvelope(sn.GetData())
		if err == nil && streamed {
			err = fmt.Errorf("%w: stored snapshot lacks its data", errBadEnvelope)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		older = sn
	}
	// Read-only: the WAL is open for writing from the newest snapshot.
	w, err := wal.OpenForRead(s.lg, s.walDir, from)
	if err != nil {
		return nil, nil, fmt.Errorf("open wal at %d: %w", from.GetIndex(), err)
	}
	defer w.Close()
	_, hs, ents, err := w.ReadAll()
	if err != nil {
		return nil, nil, fmt.Errorf("read wal from %d: %w", from.GetIndex(), err)
	}
	if err := checkJoin(from, ds, hs, ents); err != nil {
		return nil, nil, err
	}
	// Up to the newest snapshot from this read, then the entries the start
	// already read and checked.
	k := ds.snapshot.GetMetadata().GetIndex() - from.GetIndex()
	if err := checkEntries(s.walDir, ents[:k]); err != nil {
		return nil, nil, err
	}
	return older, append(ents[:k:k], ds.entries...), nil
}

// checkJoin checks that ents and hs, read from the snapshot record from on,
// are the log ds holds from its newest snapshot on, with the entries before
// it committed and never replaced by a leader's snapshot (see above).
func checkJoin(from *walpb.Snapshot, ds *diskState, hs *raftpb.HardState, ents []*raftpb.Entry) error {
	if !proto.Equal(hs, ds.hardState) {
		return fmt.Errorf("the wal read from %d ends in hard state %v, not %v", from.GetIndex(), hs, ds.hardState)
	}
	first, newest := from.GetIndex()+1, ds.snapshot.GetMetadata().GetIndex()
	if len(ents) == 0 || ents[0].GetIndex() != first || ents[len(ents)-1].GetIndex() < newest {
		return fmt.Errorf("the wal from %d does not hold every entry up to the newest snapshot at %d", from.GetIndex(), newest)
	}
	// The newest snapshot's own record is among them.
	for _, r := range ds.walSnaps {
		if i := r.GetIndex(); i >= first && i <= newest {
			if term := ents[i-first].GetTerm(); term != r.GetTerm() {
				return fmt.Errorf("entry %d has term %d, but the snapshot recorded there has term %d: a leader's snapshot replaced the log", i, term, r.GetTerm())
			}
		}
	}
	tail := ents[newest-from.GetIndex():]
	if len(tail) != len(ds.entries) {
		return fmt.Errorf("the wal from %d holds %d entries after the newest snapshot, from %d it holds %d", from.GetIndex(), len(tail), newest, len(ds.entries))
	}
	for i, e := range tail {
		if o := ds.entries[i]; e.GetIndex() != o.GetIndex() || e.GetTerm() != o.GetTerm() {
			return fmt.Errorf("the wal from %d holds entry %d term %d where from %d it holds entry %d term %d",
				from.GetIndex(), e.GetIndex(), e.GetTerm(), newest, o.GetIndex(), o.GetTerm())
		}
	}
	return nil
}
