package raftnode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.etcd.io/etcd/server/v3/etcdserver/api/snap"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// diskState is what a node finds in its data dir at start.
type diskState struct {
	snapshot  *raftpb.Snapshot // nil when there is none
	hardState *raftpb.HardState
	entries   []*raftpb.Entry
	fresh     bool // the WAL was just created
	clusterID uint64
	// walSnaps are the snapshots the WAL recorded, up to its commit index.
	walSnaps []*walpb.Snapshot
	// newestSnapshot is the index of the newest snapshot when the replay
	// starts from an older one (rewind, history.go); 0 otherwise.
	newestSnapshot uint64
}

// storage owns the WAL and the snapshot files of one member. Only the Ready
// loop uses it after start.
type storage struct {
	lg          *zap.Logger
	memberDir   string
	walDir      string
	snapDir     string
	wal         *wal.WAL
	snapshotter *snap.Snapshotter
	// walDirInfo is the WAL directory as opened: checkWALDir compares the
	// directory at walDir with it.
	walDirInfo os.FileInfo
}

// walMetadata identifies the member a WAL belongs to and its cluster.
func walMetadata(id, clusterID uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, id), clusterID)
}

// removedMarker is the file a member leaves in its data dir once it knows it
// was removed, so that it refuses to start on that data again even when the
// removal itself never reached its log.
const removedMarker = "removed"

func removedError(dataDir string) error {
	return fmt.Errorf("%w: %s holds the data of a removed member; wipe it and add the node back under a new id", ErrRemoved, dataDir)
}

// CheckDataDir reports whether dataDir can be used by member id: it must be
// empty or absent, or hold the WAL of that same member, not removed. It
// writes nothing.
func CheckDataDir(lg *zap.Logger, dataDir string, id uint64) error {
	if fileutil.Exist(filepath.Join(dataDir, "member", removedMarker)) {
		return removedError(dataDir)
	}
	walDir := filepath.Join(dataDir, "member", "wal")
	if !wal.Exist(walDir) {
		return nil
	}
	// Every WAL segment repeats the metadata record, so reading from the
	// latest snapshot record is enough and works on a compacted WAL.
	walSnaps, err := wal.ValidSnapshotEntries(lg, walDir)
	if err != nil {
		return fmt.Errorf("read wal in %s: %w", dataDir, err)
	}
	from := &walpb.Snapshot{}
	if len(walSnaps) > 0 {
		from = walSnaps[len(walSnaps)-1]
	}
	w, err := wal.OpenForRead(lg, walDir, from)
	if err != nil {
		return fmt.Errorf("open wal in %s: %w", dataDir, err)
	}
	defer w.Close()
	metadata, _, ents, err := w.ReadAll()
	if err != nil && metadata == nil {
		return fmt.Errorf("read wal in %s: %w", dataDir, err)
	}
	if _, err := checkMetadata(dataDir, metadata, id); err != nil {
		return err
	}
	// Read-only opening tolerates an unreadable final record; make sure it
	// is a torn write and not damage a start would cut away.
	if err := checkTornTail(walDir); err != nil {
		return err
	}
	return checkEntries(walDir, ents)
}

// checkMetadata checks that a WAL belongs to member id and returns its
// cluster id.
func checkMetadata(dataDir string, metadata []byte, id uint64) (clusterID uint64, err error) {
	if len(metadata) != 16 {
		return 0, fmt.Errorf("wal in %s has no raftkv member id", dataDir)
	}
	if got := binary.BigEndian.Uint64(metadata); got != id {
		return 0, fmt.Errorf("%w: %s holds member %d's data, not member %d's: start it with --id %d, or give member %d its own --data-dir", ErrIDMismatch, dataDir, got, id, got, id)
	}
	return binary.BigEndian.Uint64(metadata[8:]), nil
}

// walExists reports whether dataDir holds a WAL.
func walExists(dataDir string) bool {
	return wal.Exist(filepath.Join(dataDir, "member", "wal"))
}

// openStorage opens (or creates, for cluster clusterID) the WAL and snapshot
// directory of member id under dataDir and reads back everything needed to
// restart raft.
func openStorage(lg *zap.Logger, dataDir string, id, clusterID uint64) (*storage, *diskState, error) {
	s := &storage{
		lg:        lg,
		memberDir: filepath.Join(dataDir, "member"),
		walDir:    filepath.Join(dataDir, "member", "wal"),
		snapDir:   filepath.Join(dataDir, "member", "snap"),
	}
	if fileutil.Exist(filepath.Join(s.memberDir, removedMarker)) {
		return nil, nil, removedError(dataDir)
	}
	// Before the WAL starts preallocating its next segment as a .tmp file.
	sweepWALTmp(lg, s.walDir)
	if !wal.Exist(s.walDir) {
		if err := fileutil.TouchDirAll(lg, s.snapDir); err != nil {
			return nil, nil, fmt.Errorf("create snap dir: %w", err)
		}
		w, err := wal.Create(lg, s.walDir, walMetadata(id, clusterID))
		if err != nil {
			return nil, nil, fmt.Errorf("create wal: %w", err)
		}
		s.wal = w
		s.snapshotter = snap.New(lg, s.snapDir)
		if s.walDirInfo, err = os.Stat(s.walDir); err != nil {
			w.Close()
			return nil, nil, fmt.Errorf("create wal: %w", err)
		}
		return s, &diskState{hardState: &raftpb.HardState{}, fresh: true, clusterID: clusterID}, nil
	}
	if err := fileutil.TouchDirAll(lg, s.snapDir); err != nil {
		return nil, nil, fmt.Errorf("open snap dir: %w", err)
	}
	s.snapshotter = snap.New(lg, s.snapDir)

	// Load the newest snapshot that the WAL also recorded: a snapshot file
	// written just before a crash, without its WAL record, must be ignored.
	walSnaps, err := wal.ValidSnapshotEntries(lg, s.walDir)
	if err != nil {
		return nil, nil, fmt.Errorf("list wal snapshots: %w", err)
	}
	snapshot, err := s.snapshotter.LoadNewestAvailable(walSnaps)
	if err != nil && !errors.Is(err, snap.ErrNoSnapshot) {
		return nil, nil, fmt.Errorf("load snapshot: %w", err)
	}
	walSnap := &walpb.Snapshot{}
	if snapshot != nil {
		walSnap.Index = proto.Uint64(snapshot.GetMetadata().GetIndex())
		walSnap.Term = proto.Uint64(snapshot.GetMetadata().GetTerm())
	}
	ds := &diskState{snapshot: snapshot, walSnaps: walSnaps}
	var metadata []byte
	for repaired := false; ; repaired = true {
		w, err := wal.Open(lg, s.walDir, walSnap)
		if err != nil {
			return nil, nil, fmt.Errorf("open wal: %w", err)
		}
		metadata, ds.hardState, ds.entries, err = w.ReadAll()
		if err == nil {
			s.wal = w
			break
		}
		w.Close()
		// A torn final record is what a crash in the middle of a write leaves
		// behind; it was never fsynced, so it was never acknowledged, and
		// cutting it off loses nothing. Anything else is corruption.
		if repaired || !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, fmt.Errorf("read wal: %w", err)
		}
		if terr := checkTornTail(s.walDir); terr != nil {
			return nil, nil, terr
		}
		lg.Warn("repairing torn wal tail", zap.String("dir", s.walDir), zap.Error(err))
		if !wal.Repair(lg, s.walDir) {
			return nil, nil, fmt.Errorf("repair wal: %w", err)
		}
	}
	if ds.clusterID, err = checkMetadata(dataDir, metadata, id); err != nil {
		s.wal.Close()
		return nil, nil, err
	}
	if err := checkEntries(s.walDir, ds.entries); err != nil {
		s.wal.Close()
		return nil, nil, err
	}
	if s.walDirInfo, err = os.Stat(s.walDir); err != nil {
		s.wal.Close()
		return nil, nil, fmt.Errorf("open wal: %w", err)
	}
	// A crash right after the WAL was created leaves it without a single
	// record of raft state: the member never took part, so it starts afresh.
	ds.fresh = ds.snapshot == nil && len(ds.entries) == 0 && raft.IsEmptyHardState(ds.hardState)
	s.sweepSnapDir()
	return s, ds, nil
}

// saveSnapshot persists a snapshot whose data is the concatenation of data.
// The snapshot file is written before the
// WAL record that points at it: after a crash between the two, the WAL has no
// record of the file and it is ignored; the other order would leave a WAL that
// names a snapshot which does not exist.
func (s *storage) saveSnapshot(md *raftpb.SnapshotMetadata, data ...[]byte) error {
	_, err := s.saveSnapshotFrom(md, writeParts(data...))
	return err
}

// saveSnapshotFrom is saveSnapshot with the data written by data (see
// writeSnapFileFrom), and returns the data's size.
func (s *storage) saveSnapshotFrom(md *raftpb.SnapshotMetadata, data func(io.Writer) error) (int64, error) {
	walSnap := &walpb.Snapshot{
		Index:     proto.Uint64(md.GetIndex()),
		Term:      proto.Uint64(md.GetTerm()),
		ConfState: md.GetConfState(),
	}
	size, err := writeSnapFileFrom(s.snapDir, md, data)
	if err != nil {
		return 0, err
	}
	// The file is synced but not its directory entry; without this a power
	// loss could keep the WAL record and lose the file.
	if err := fsyncDir(s.snapDir); err != nil {
		return 0, err
	}
	if err := s.wal.SaveSnapshot(walSnap); err != nil {
		return 0, fmt.Errorf("save wal snapshot record: %w", err)
	}
	return size, nil
}

// purge removes the oldest snapshot and WAL files beyond the limits. WAL
// files still locked by the WAL (those needed after the latest snapshot) are
// never removed, so the WAL count can exceed maxWALs for a while.
func (s *storage) purge(maxSnapshots, maxWALs int, newest uint64) error {
	if err := purgeFiles(s.snapDir, ".snap", maxSnapshots, false); err != nil {
		return err
	}
	// A kept snapshot is only usable with the WAL from its index on (it is
	// the fallback when a newer one fails its CRC), so WAL files are
	// unlocked, and may be purged, only up to the oldest snapshot kept.
	release := newest
	if oldest, ok := s.oldestSnapshotIndex(); ok && maxSnapshots > 0 {
		release = min(release, oldest)
	}
	if err := s.wal.ReleaseLockTo(release); err != nil {
		return fmt.Errorf("release wal locks: %w", err)
	}
	return purgeFiles(s.walDir, ".wal", maxWALs, true)
}

// oldestSnapshotIndex returns the index of the oldest snapshot file.
// Snapshot files are named <term>-<index>.snap in hex.
func (s *storage) oldestSnapshotIndex() (uint64, bool) {
	names, err := fileutil.ReadDir(s.snapDir)
	if err != nil {
		return 0, false
	}
	var oldest uint64
	found := false
	for _, name := range names {
		var term, index uint64
		if _, err := fmt.Sscanf(name, snapFileName, &term, &index); err != nil || !strings.HasSuffix(name, ".snap") {
			continue
		}
		if !found || index < oldest {
			oldest, found = index, true
		}
	}
	return oldest, found
}

func purgeFiles(dir, suffix string, keep int, locked bool) error {
	if keep <= 0 {
		return nil
	}
	names, err := fileutil.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("purge: read %s: %w", dir, err)
	}
	names = slices.DeleteFunc(names, func(n string) bool { return !strings.HasSuffix(n, suffix) })
	// File names start with zero-padded hex sequence numbers or indexes, so
	// lexical order is age order.
	slices.Sort(names)
	for len(names) > keep {
		path := filepath.Join(dir, names[0])
		if locked {
			l, err := fileutil.TryLockFile(path, os.O_WRONLY, fileutil.PrivateFileMode)
			if err != nil {
				return nil // still in use by the WAL
			}
			err = os.Remove(path)
			l.Close()
			if err != nil {
				return fmt.Errorf("purge %s: %w", path, err)
			}
		} else if err := os.Remove(path); err != nil {
			return fmt.Errorf("purge %s: %w", path, err)
		}
		names = names[1:]
	}
	return nil
}

// readSnapDB reads the state machine data that rafthttp's snapshot receiver
// saved beside the snapshot message at index.
func (s *storage) readSnapDB(index uint64) ([]byte, error) {
	path, err := s.snapshotter.DBFilePath(index)
	if err != nil {
		return nil, fmt.Errorf("received snapshot at %d: %w", index, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("received snapshot at %d: %w", index, err)
	}
	return data, nil
}

// releaseSnapDBs removes the data files rafthttp saved for received
// snapshots up to index, once the snapshot itself is stored.
func (s *storage) releaseSnapDBs(index uint64) {
	md := &raftpb.SnapshotMetadata{Index: proto.Uint64(index + 1)}
	if err := s.snapshotter.ReleaseSnapDBs(&raftpb.Snapshot{Metadata: md}); err != nil {
		s.lg.Warn("remove received snapshot data files", zap.Error(err))
	}
}

// sweepSnapDir removes what an interrupted snapshot transfer leaves behind:
// rafthttp's temporary files and data files of snapshots never applied.
func (s *storage) sweepSnapDir() {
	names, err := fileutil.ReadDir(s.snapDir)
	if err != nil {
		s.lg.Warn("sweep snap dir", zap.Error(err))
		return
	}
	for _, name := range names {
		if strings.HasPrefix(name, "tmp") || strings.HasSuffix(name, ".snap.db") {
			if err := os.Remove(filepath.Join(s.snapDir, name)); err != nil {
				s.lg.Warn("sweep snap dir", zap.String("file", name), zap.Error(err))
			}
		}
	}
}

// markRemoved records in the data dir that this member was removed.
func (s *storage) markRemoved() error {
	path := filepath.Join(s.memberDir, removedMarker)
	if err := os.WriteFile(path, []byte("this member was removed from its cluster\n"), fileutil.PrivateFileMode); err != nil {
		return err
	}
	return fsyncDir(s.memberDir)
}

func fsyncDir(dir string) error {
	d, err := fileutil.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := fileutil.Fsync(d); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// checkWALDir reports whether the WAL directory is still the one the WAL
// was opened in. Deleting it (rm -rf) leaves the open segment writable and
// fsync succeeding on a file no path reaches: nothing written is durable,
// and a restart would not find it.
func (s *storage) checkWALDir() error {
	info, err := os.Stat(s.walDir)
	switch {
	case err != nil:
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // without stat's copy of the path
		}
		return fmt.Errorf("%w: %s: %w", ErrWALDirGone, s.walDir, err)
	case !os.SameFile(info, s.walDirInfo):
		return fmt.Errorf("%w: %s is another directory now", ErrWALDirGone, s.walDir)
	}
	return nil
}

// sweepWALTmp removes the .tmp files etcd's WAL preallocates its next
// segment in. One that failed to preallocate (no space left) stays behind
// empty; one that was never used keeps its space. A .tmp file holds no data
// until it is renamed to a segment. Call it only while this data dir has no
// open WAL (before open, after close): the WAL creates its .tmp file a moment
// before it locks it, so the lock alone does not tell a running WAL's file
// from a leftover. The lock still keeps a sweep off a file another process's
// WAL holds.
func sweepWALTmp(lg *zap.Logger, walDir string) {
	names, err := fileutil.ReadDir(walDir)
	if err != nil {
		return // no wal dir yet
	}
	for _, name := range names {
		if !strings.HasSuffix(name, ".tmp") {
			continue
		}
		path := filepath.Join(walDir, name)
		l, err := fileutil.TryLockFile(path, os.O_WRONLY, fileutil.PrivateFileMode)
		if err != nil {
			continue // locked: a running WAL's
		}
		err = os.Remove(path)
		l.Close()
		if err != nil {
			lg.Warn("remove a leftover wal .tmp file", zap.String("file", path), zap.Error(err))
		}
	}
}

func (s *storage) close() error {
	err := s.wal.Close()
	// Closing the WAL removes the segment it had preallocated, but not one
	// whose preallocation failed.
	sweepWALTmp(s.lg, s.walDir)
	if err != nil {
		return fmt.Errorf("close wal: %w", err)
	}
	return nil
}
