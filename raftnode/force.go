package raftnode

import (
	"fmt"
	"maps"
	"slices"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// Recovery after losing quorum for good (Config.ForceNewCluster), after
// etcd's restartAsStandaloneNode. The member's log is cut back to what it
// knows committed, and a removal of every other member is appended to it as
// committed entries at the current term, in the WAL and fsynced before raft
// starts. Raft then applies those removals as it applies any committed
// configuration change, which leaves this member the only voter, with every
// entry it had committed and the revisions they made. The removed members
// are refused from then on (the peer guard answers them 403 and they stop);
// their data can never rejoin, since their log past the old commit index
// is not this one.
//
// The rewrite is durable before raft starts, so a crash right after leaves
// a one-member cluster on disk: a start without the flag carries on, and a
// start with it finds nothing to remove.

// forced is what forceNewCluster changed.
type forced struct {
	// removed are the members it removed; the peer guard refuses them
	// from the start, before raft has applied the removals.
	removed map[uint64]struct{}
	// lastIndex is the index of the last removal: once it is applied the
	// member is the only voter and can elect itself at once.
	lastIndex uint64
}

// forceNewCluster rewrites the log in ds (and on disk, through st) so that
// member cfg.ID restarts as the only member of its cluster. It returns what
// it removed; nothing when the member is already alone.
func forceNewCluster(lg *zap.Logger, cfg *Config, st *storage, ds *diskState) (forced, error) {
	if ds.fresh {
		return forced{}, fmt.Errorf("%w: %s holds no raft state: the flag recovers a member that has data; start it from the data dir of a surviving member",
			ErrForceNewCluster, cfg.DataDir)
	}
	var base *membership
	commit := ds.hardState.GetCommit()
	term := ds.hardState.GetTerm()
	if ds.snapshot != nil {
		members, _, _, err := decodeEnvelope(ds.snapshot.GetData())
		if err != nil {
			return forced{}, fmt.Errorf("load snapshot: %w", err)
		}
		base = members
		// The snapshot is committed whatever the hard state says.
		commit = max(commit, ds.snapshot.GetMetadata().GetIndex())
		term = max(term, ds.snapshot.GetMetadata().GetTerm())
	} else {
		base = newMembership()
	}
	keep := len(ds.entries)
	for i, e := range ds.entries {
		if e.GetIndex() > commit {
			keep = i
			break
		}
		term = max(term, e.GetTerm())
	}
	members, err := lookAhead(base, ds.entries[:keep], commit)
	if err != nil {
		return forced{}, err
	}
	self, ok := members.members[cfg.ID]
	switch {
	case members.isRemoved(cfg.ID):
		return forced{}, fmt.Errorf("%w: member %d was removed from its cluster, so %s is not the cluster's data any more; recover from another member's data dir",
			ErrForceNewCluster, cfg.ID, cfg.DataDir)
	case !ok:
		return forced{}, fmt.Errorf("%w: %s has not yet applied member %d's own addition (it was joining); recover from another member's data dir",
			ErrForceNewCluster, cfg.DataDir, cfg.ID)
	case self.IsLearner:
		// A learner does not count toward a quorum, so nothing says its
		// log holds every committed write.
		return forced{}, fmt.Errorf("%w: member %d is a learner, whose log may lack writes a quorum acknowledged; recover from the data dir of a surviving voter, the one with the highest applied index (raftkv status), or from a backup",
			ErrForceNewCluster, cfg.ID)
	}
	others := slices.Sorted(maps.Keys(members.members))
	others = slices.DeleteFunc(others, func(id uint64) bool { return id == cfg.ID })
	if len(others) == 0 {
		// Its uncommitted entries are its own to commit, as on any
		// restart of a one-member cluster.
		lg.Warn("--force-new-cluster: this member is already the only member of its cluster; nothing to remove, starting as usual (restart without the flag from now on)",
			zap.Uint64("commit", commit))
		return forced{}, nil
	}

	// Said once the refusals are behind: a refused start changes nothing.
	lg.Warn("--force-new-cluster: this member removes every other member from its cluster and serves alone, "+
		"keeping every write it had committed; writes a quorum acknowledged without it are lost, and the removed members can never rejoin on their data. "+
		"Use it only when a quorum can never come back; grow the cluster again with learners, and restart this member without the flag from now on",
		zap.Uint64s("removing", others), zap.String("data-dir", cfg.DataDir))
	dropped := len(ds.entries) - keep
	// A leader's first entry in a term is empty: dropping it loses no
	// write, and counting it would alarm for nothing.
	writes := 0
	for _, e := range ds.entries[keep:] {
		if len(e.GetData()) > 0 {
			writes++
		}
	}
	ents := make([]*raftpb.Entry, 0, len(others))
	out := forced{removed: make(map[uint64]struct{}, len(others))}
	for i, id := range others {
		cc := &raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(id)}
		data, err := proto.Marshal(cc)
		if err != nil {
			return forced{}, fmt.Errorf("encode the removal of member %d: %w", id, err)
		}
		ents = append(ents, &raftpb.Entry{
			Type:  raftpb.EntryConfChange.Enum(),
			Term:  proto.Uint64(term),
			Index: proto.Uint64(commit + 1 + uint64(i)),
			Data:  data,
		})
		out.removed[id] = struct{}{}
	}
	out.lastIndex = commit + uint64(len(ents))
	hs := &raftpb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(ds.hardState.GetVote()), Commit: proto.Uint64(out.lastIndex)}
	// The WAL takes entries that overlap its tail as replacing it, so the
	// uncommitted entries are gone from the next read on. Saving entries
	// fsyncs.
	if err := st.wal.Save(hs, ents); err != nil {
		return forced{}, fmt.Errorf("save the forced removals to the wal: %w", err)
	}
	ds.entries = append(ds.entries[:keep:keep], ents...)
	ds.hardState = hs
	lg.Warn("--force-new-cluster: removed every other member; this member restarts as the only member of its cluster",
		zap.Uint64s("removed", others), zap.Uint64("commit", commit),
		zap.Int("uncommitted-entries-dropped", dropped), zap.Int("of-them-writes-or-changes", writes), zap.Uint64("term", term),
		zap.Uint64("last-removal-index", out.lastIndex))
	return out, nil
}

// lookAhead returns the member table that the committed entries among ents
// (those up to commit) leave when applied to base, which is not changed.
// Changes the table refuses are skipped, as the Ready loop skips them.
func lookAhead(base *membership, ents []*raftpb.Entry, commit uint64) (*membership, error) {
	future := base.clone()
	for _, e := range ents {
		if e.GetIndex() > commit {
			break
		}
		if e.GetType() == raftpb.EntryNormal && isAttributes(e.GetData()) {
			if a, err := unmarshalAttributes(e.GetData()); err == nil {
				future.applyAttributes(a)
			}
			continue
		}
		if e.GetType() != raftpb.EntryConfChange {
			continue
		}
		cc := &raftpb.ConfChange{}
		if err := proto.Unmarshal(e.GetData(), cc); err != nil {
			return nil, fmt.Errorf("decode configuration change at %d: %w", e.GetIndex(), err)
		}
		if future.check(cc) == nil {
			future.apply(cc)
		}
	}
	return future, nil
}
