package raftnode

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// Seed describes a member's data dir made from a state machine snapshot
// rather than by running: a backup restored into a new cluster.
type Seed struct {
	// DataDir is created; it must be absent or empty.
	DataDir string
	// ID and Peers are the new cluster's, as `raftkv serve` takes them:
	// member i+1 has Peers[i]. ClusterToken is --initial-cluster-token.
	ID           uint64
	Peers        []string
	ClusterToken string
	// Index is the log index the seeded state stands at: the restored
	// store's revision, so that the new cluster's revisions continue after
	// the backup's. Zero is taken as 1 (raft has no snapshot at 0).
	Index uint64
	// State is the state machine's snapshot at Index.
	State []byte
	// Origin makes the cluster id: the backup's checksum, so that a cluster
	// restored with the same peer URLs and token as the one the backup came
	// from, or restored twice from different backups, gets an id of its
	// own and rafthttp keeps their members apart.
	Origin []byte
}

// RestoredClusterID is the cluster id of the members seeded from one backup
// with the same token and peer URLs: every member computes it alike.
func RestoredClusterID(token string, peers []string, origin []byte) uint64 {
	h := sha256.New()
	h.Write([]byte("restored\x00"))
	h.Write(origin)
	h.Write([]byte{0})
	h.Write([]byte(token))
	for _, p := range slices.Sorted(slices.Values(peers)) {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return binary.BigEndian.Uint64(h.Sum(nil)[:8])
}

// SeedDataDir writes the data dir a member of a new cluster starts from, as
// if it had just taken a snapshot at s.Index of s.State in a cluster made of
// s.Peers: a snapshot file, and a WAL that records it with a hard state
// committed to it. `raftkv serve` then restarts from it like from any data
// dir. Each member of the new cluster is seeded from the same state, so they
// agree from the first index on.
//
// The dir is built beside its destination and renamed into place, so a
// crash or an error leaves no half-made data dir that a start would take
// for a member's.
func SeedDataDir(lg *zap.Logger, s Seed) (clusterID uint64, err error) {
	if err := checkClusterList(s.ID, s.Peers); err != nil {
		return 0, err
	}
	if s.DataDir == "" {
		return 0, fmt.Errorf("%w: data dir is empty", ErrInvalidConfig)
	}
	if names, err := os.ReadDir(s.DataDir); err == nil && len(names) > 0 {
		return 0, fmt.Errorf("%w: %s already holds files; restore into a new or empty directory", ErrDataDirNotEmpty, s.DataDir)
	} else if err != nil && !os.IsNotExist(err) {
		return 0, err
	}
	index := max(s.Index, 1)
	clusterID = RestoredClusterID(s.ClusterToken, s.Peers, s.Origin)

	parent := filepath.Dir(filepath.Clean(s.DataDir))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return 0, err
	}
	// A restore of this data dir that was killed leaves its temporary dir;
	// nothing else makes one of this name, and nothing ever trusts one.
	prefix := "." + filepath.Base(s.DataDir) + ".restore-"
	if stale, err := filepath.Glob(filepath.Join(parent, prefix+"*")); err == nil {
		for _, dir := range stale {
			lg.Info("removing what an interrupted restore left", zap.String("dir", dir))
			os.RemoveAll(dir)
		}
	}
	tmp, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	members := newMembership()
	cs := &raftpb.ConfState{}
	for i, p := range s.Peers {
		id := uint64(i + 1)
		members.members[id] = Member{ID: id, PeerURLs: []string{p}}
		cs.Voters = append(cs.Voters, id)
	}
	md := &raftpb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(1), ConfState: cs}
	snapDir := filepath.Join(tmp, "member", "snap")
	if err := fileutil.TouchDirAll(lg, snapDir); err != nil {
		return 0, err
	}
	if err := writeSnapFile(snapDir, md, envelopeHeader(envelopeMagic, members), s.State); err != nil {
		return 0, err
	}
	w, err := wal.Create(lg, filepath.Join(tmp, "member", "wal"), walMetadata(s.ID, clusterID))
	if err != nil {
		return 0, fmt.Errorf("create wal: %w", err)
	}
	err = w.SaveSnapshot(&walpb.Snapshot{Index: proto.Uint64(index), Term: proto.Uint64(1), ConfState: cs})
	if err == nil {
		// Save syncs: the hard state says the snapshot is committed, which
		// it is on every member of the new cluster.
		err = w.Save(&raftpb.HardState{Term: proto.Uint64(1), Commit: proto.Uint64(index)}, nil)
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("write wal: %w", err)
	}
	for _, dir := range []string{snapDir, filepath.Join(tmp, "member"), tmp} {
		if err := fsyncDir(dir); err != nil {
			return 0, err
		}
	}
	// An empty directory at DataDir is replaced (os.Remove removes only an
	// empty one); anything else was refused above, and a race with another
	// writer fails the rename.
	if err := os.Remove(s.DataDir); err != nil && !os.IsNotExist(err) {
		return 0, fmt.Errorf("%w: %s: %w", ErrDataDirNotEmpty, s.DataDir, err)
	}
	if err := os.Rename(tmp, s.DataDir); err != nil {
		return 0, fmt.Errorf("move the restored data dir into place: %w", err)
	}
	if err := fsyncDir(parent); err != nil {
		return 0, err
	}
	lg.Info("seeded data dir", zap.String("data-dir", s.DataDir), zap.Uint64("member", s.ID),
		zap.String("cluster-id", FormatID(clusterID)), zap.Uint64("index", index))
	return clusterID, nil
}
