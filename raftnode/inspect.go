package raftnode

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Finding is something InspectDataDir found at a place in a file: damage,
// or a note about something a start would handle by itself.
type Finding struct {
	File string `json:"file"`
	// Offset is the byte offset in File where the damaged frame or field
	// starts; -1 when the finding is not about one place.
	Offset int64  `json:"offset"`
	What   string `json:"what"`
}

func (f Finding) String() string {
	if f.Offset < 0 {
		return f.File + ": " + f.What
	}
	return fmt.Sprintf("%s: offset %d: %s", f.File, f.Offset, f.What)
}

// DataDirReport is what InspectDataDir read from a data dir: the state a
// start would recover, and what is wrong with the files.
type DataDirReport struct {
	MemberID, ClusterID uint64
	// LastIndex and LastTerm are those of the last entry of the log (of the
	// snapshot when the log holds none after it).
	LastIndex, LastTerm uint64
	// Term and Commit are the hard state's.
	Term, Commit uint64
	// SnapshotIndex and SnapshotTerm are those of the snapshot a start
	// would load (0 without one), read from SnapshotFile.
	SnapshotIndex, SnapshotTerm uint64
	SnapshotFile                string
	WALFiles, SnapFiles         []string
	// Members is the member table at Commit, by id.
	Members []Member
	// Removed reports that the member left the cluster: its data dir holds
	// the removed marker, or its removal is committed.
	Removed bool
	// StoreSnapshot is the state machine's part of the snapshot, nil
	// without one; Committed are the state machine's entries committed
	// after it, in order. Applying them to it rebuilds the state machine at
	// Commit.
	StoreSnapshot []byte
	Committed     []Entry
	// Damage lists what a start would refuse, or what loses data; Notes
	// what it repairs or ignores by itself.
	Damage, Notes []Finding
}

// InspectDataDir reads the data dir of a member and checks every WAL
// record's framing and CRC, every snapshot file's CRC, and the snapshot and
// the member table a start would load. It never writes: files are opened
// read-only, and nothing is repaired, renamed or locked. On the data dir of
// a running member the result is the state of a moment ago, and the end of
// the WAL may be caught in the middle of a write (a torn tail, a note).
//
// Damage is reported in the report; the error is for a dir that holds no
// member's data (ErrNoData) or cannot be read.
func InspectDataDir(dataDir string) (*DataDirReport, error) {
	memberDir := filepath.Join(dataDir, "member")
	walDir := filepath.Join(memberDir, "wal")
	if !wal.Exist(walDir) {
		if _, err := os.Stat(dataDir); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoData, err)
		}
		return nil, fmt.Errorf("%w: %s has no WAL (member/wal/*.wal)", ErrNoData, dataDir)
	}
	r := &DataDirReport{}
	if _, err := os.Stat(filepath.Join(memberDir, removedMarker)); err == nil {
		r.Removed = true
	}
	log, err := readWALDir(r, walDir)
	if err != nil {
		return nil, err
	}
	snaps, err := checkSnapDir(r, filepath.Join(memberDir, "snap"))
	if err != nil {
		return nil, err
	}
	r.replay(walDir, log, snaps)
	return r, nil
}

// walLog is what the WAL's records say, read in order.
type walLog struct {
	entries   []*raftpb.Entry // consecutive, from entries[0].Index
	hardState *raftpb.HardState
	snapshots []*walpb.Snapshot
	metadata  []byte
	// stoppedAt is the first entry lost to a damaged record, 0 if none:
	// the log is read up to the entry before it.
	stoppedAt uint64
	// damaged is set when a record was unreadable.
	damaged bool
}

func (l *walLog) lastIndex() uint64 {
	if len(l.entries) == 0 {
		return 0
	}
	return l.entries[len(l.entries)-1].GetIndex()
}

// walReader checks the records of the WAL's segments one after another.
type walReader struct {
	r   *DataDirReport
	log *walLog
	// crc is the rolling checksum after the last record read; crcKnown is
	// false until a CRC record gives it and after a record that does not
	// decode.
	crc      uint32
	crcKnown bool
	metaFile string // the segment whose metadata the others must match
	// lost is set by a damaged record and cleared by the next entry: a gap
	// in the entries right after one is that record's loss, not more damage.
	lost bool
}

// lose records that a record was unreadable.
func (wr *walReader) lose() { wr.lost, wr.log.damaged = true, true }

func readWALDir(r *DataDirReport, walDir string) (*walLog, error) {
	names, err := segmentNames(r, walDir)
	if err != nil {
		return nil, err
	}
	wr := &walReader{r: r, log: &walLog{hardState: &raftpb.HardState{}}}
	for i, name := range names {
		if err := wr.readSegment(filepath.Join(walDir, name), i == len(names)-1); err != nil {
			return nil, err
		}
	}
	if wr.metaFile == "" {
		r.damage(walDir, -1, "no segment holds a metadata record (the member and cluster ids)")
	} else if len(wr.log.metadata) == 16 {
		r.MemberID = binary.BigEndian.Uint64(wr.log.metadata)
		r.ClusterID = binary.BigEndian.Uint64(wr.log.metadata[8:])
	}
	return wr.log, nil
}

// segmentNames returns the WAL's segments in order, checking that their
// sequence numbers follow each other: a gap is a lost segment.
func segmentNames(r *DataDirReport, walDir string) ([]string, error) {
	des, err := os.ReadDir(walDir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", walDir, err)
	}
	var names []string
	var prevSeq uint64
	for _, de := range des {
		name, path := de.Name(), filepath.Join(walDir, de.Name())
		var seq, index uint64
		switch {
		case strings.HasSuffix(name, ".wal.broken"):
			r.note(path, -1, "a copy of a segment a start cut at a torn tail")
			continue
		case strings.HasSuffix(name, ".tmp"):
			r.note(path, -1, "a segment preallocated ahead of use; it holds no records")
			continue
		case !strings.HasSuffix(name, ".wal"):
			r.note(path, -1, "not a WAL segment; ignored")
			continue
		}
		if _, err := fmt.Sscanf(name, "%016x-%016x.wal", &seq, &index); err != nil {
			r.note(path, -1, "not named like a WAL segment; a start ignores it")
			continue
		}
		if len(names) > 0 && seq != prevSeq+1 {
			r.damage(path, -1, fmt.Sprintf("segment %d follows segment %d: the segments between are missing", seq, prevSeq))
		}
		prevSeq = seq
		names = append(names, name)
		r.WALFiles = append(r.WALFiles, path)
	}
	return names, nil
}

// readSegment checks every frame of one segment. Only the last segment may
// end in a torn record: a crash in the middle of a write leaves one there,
// and a start cuts it off.
func (wr *walReader) readSegment(path string, last bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	size := info.Size()
	end, err := dataEnd(f, size)
	if err != nil {
		return err
	}
	br := bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 1<<16)
	var word [8]byte
	hasMetadata := false
	for off := int64(0); off < size; {
		if _, err := io.ReadFull(br, word[:]); err != nil {
			wr.tornOrDamaged(path, off, last, "the file ends inside a frame's length word")
			break
		}
		lenField := binary.LittleEndian.Uint64(word[:])
		if lenField == 0 {
			if end > off && last {
				wr.r.note(path, off, fmt.Sprintf("the log ends here, with %d bytes of an unfinished write after it; a start zeroes them", end-off))
			} else if end > off {
				wr.r.damage(path, off, fmt.Sprintf("a zero length word, with data up to offset %d after it: the records there are unreadable", end))
			}
			break
		}
		recBytes, padBytes := frameSize(lenField)
		next := off + 8 + recBytes + padBytes
		if next > size || next < off {
			// As checkTornTail decides: a torn write leaves the length of
			// the last frame intact in a preallocated file.
			what := fmt.Sprintf("the frame claims %d bytes, past the end of the file (%d bytes)", recBytes, size)
			if last && size-end < preallocatedRun {
				wr.r.note(path, off, "torn final record: "+what+", which was cut; a start removes it")
			} else {
				wr.r.damage(path, off, what)
			}
			break
		}
		buf := make([]byte, recBytes+padBytes)
		if _, err := io.ReadFull(br, buf); err != nil {
			return fmt.Errorf("read %s at %d: %w", path, off, err)
		}
		rec := &walpb.Record{}
		if err := proto.Unmarshal(buf[:recBytes], rec); err != nil {
			wr.crcKnown = false
			wr.lose()
			if wr.badRecord(path, off, next, end, last, buf, "the record does not decode: "+err.Error()) {
				break
			}
			off = next
			continue
		}
		if ok, torn := wr.checkCRC(path, off, next, end, last, rec, buf); torn {
			break
		} else if ok {
			hasMetadata = wr.record(path, off, rec) || hasMetadata
		}
		off = next
	}
	if !hasMetadata {
		wr.r.damage(path, -1, "the segment has no readable metadata record")
	}
	return nil
}

// tornOrDamaged reports a frame cut short by the end of the file.
func (wr *walReader) tornOrDamaged(path string, off int64, last bool, what string) {
	if last {
		wr.r.note(path, off, "torn final record: "+what+"; a start removes it")
		return
	}
	wr.r.damage(path, off, what)
}

// badRecord reports a record that fails its decoding or its CRC, as a torn
// final record when it is one: in the last segment, with a whole 512-byte
// sector of it never written (zero, as etcd's decoder decides) and nothing
// written after it. It returns true for a torn record: reading stops.
func (wr *walReader) badRecord(path string, off, next, end int64, last bool, buf []byte, what string) bool {
	if last && end <= next && hasZeroSector(off+8, buf) {
		wr.r.note(path, off, "torn final record: "+what+"; a start removes it")
		return true
	}
	wr.r.damage(path, off, what)
	wr.lose()
	return false
}

// hasZeroSector reports whether data, which starts at offset off of its
// file, has an all-zero part within one 512-byte disk sector.
func hasZeroSector(off int64, data []byte) bool {
	const sector = 512
	for len(data) > 0 {
		n := min(int(sector-off%sector), len(data))
		if !slices.ContainsFunc(data[:n], func(b byte) bool { return b != 0 }) {
			return true
		}
		data, off = data[n:], off+int64(n)
	}
	return false
}

// checkCRC checks rec against the rolling CRC (etcd's: crc32-Castagnoli over
// every record's data from the first segment on, each segment starting with
// a CRC record that carries the CRC so far). After a mismatch it continues
// from the CRC the record claims, so that each damaged record is reported
// by itself and not every one after it.
func (wr *walReader) checkCRC(path string, off, next, end int64, last bool, rec *walpb.Record, buf []byte) (ok, torn bool) {
	if rec.GetType() == wal.CrcType {
		if wr.crcKnown && rec.GetCrc() != wr.crc {
			wr.r.damage(path, off, fmt.Sprintf("the CRC record carries %08x, but the records before it end at %08x: a segment was lost or replaced", rec.GetCrc(), wr.crc))
		}
		wr.crc, wr.crcKnown = rec.GetCrc(), true
		return true, false
	}
	known := wr.crcKnown
	sum := crc32.Update(wr.crc, walCRCTable, rec.GetData())
	wr.crc, wr.crcKnown = rec.GetCrc(), true
	if !known || sum == rec.GetCrc() {
		return true, false
	}
	what := fmt.Sprintf("%s record: CRC mismatch (stored %08x, computed %08x)", recordTypeName(rec.GetType()), rec.GetCrc(), sum)
	return false, wr.badRecord(path, off, next, end, last, buf, what)
}

// walCRCTable is the checksum etcd's WAL chains its records with.
var walCRCTable = crc32.MakeTable(crc32.Castagnoli)

func recordTypeName(t int64) string {
	switch t {
	case wal.MetadataType:
		return "metadata"
	case wal.EntryType:
		return "entry"
	case wal.StateType:
		return "hard state"
	case wal.CrcType:
		return "crc"
	case wal.SnapshotType:
		return "snapshot"
	}
	return fmt.Sprintf("type %d", t)
}

// record takes in a record whose CRC holds; it returns true for a metadata
// record.
func (wr *walReader) record(path string, off int64, rec *walpb.Record) (metadata bool) {
	l := wr.log
	switch rec.GetType() {
	case wal.CrcType:
	case wal.MetadataType:
		switch {
		case len(rec.GetData()) != 16:
			wr.r.damage(path, off, fmt.Sprintf("the metadata record holds %d bytes, not a member id and a cluster id", len(rec.GetData())))
		case wr.metaFile == "":
			l.metadata, wr.metaFile = rec.GetData(), path
		case !bytes.Equal(rec.GetData(), l.metadata):
			wr.r.damage(path, off, fmt.Sprintf("the metadata (member %d, cluster %s) differs from %s's (member %d, cluster %s)",
				binary.BigEndian.Uint64(rec.GetData()), FormatID(binary.BigEndian.Uint64(rec.GetData()[8:])), filepath.Base(wr.metaFile),
				binary.BigEndian.Uint64(l.metadata), FormatID(binary.BigEndian.Uint64(l.metadata[8:]))))
		}
		return true
	case wal.EntryType:
		e := &raftpb.Entry{}
		if err := proto.Unmarshal(rec.GetData(), e); err != nil {
			wr.r.damage(path, off, "the entry does not decode: "+err.Error())
			wr.lose()
			return false
		}
		if problem := entryProblem(e); problem != "" {
			wr.r.damage(path, off, problem)
			wr.lose()
			return false
		}
		wr.appendEntry(path, off, e)
	case wal.StateType:
		hs := &raftpb.HardState{}
		if err := proto.Unmarshal(rec.GetData(), hs); err != nil {
			wr.r.damage(path, off, "the hard state does not decode: "+err.Error())
			return false
		}
		l.hardState = hs
	case wal.SnapshotType:
		s := &walpb.Snapshot{}
		if err := proto.Unmarshal(rec.GetData(), s); err != nil {
			wr.r.damage(path, off, "the snapshot record does not decode: "+err.Error())
			return false
		}
		l.snapshots = append(l.snapshots, s)
	default:
		wr.r.damage(path, off, fmt.Sprintf("a record of type %d, which etcd's WAL never writes", rec.GetType()))
	}
	return false
}

// appendEntry adds e to the log as raft does: an entry replaces the one at
// its index and every one after it (a new leader overwrote them).
// After a gap the log stops: what follows cannot be applied.
func (wr *walReader) appendEntry(path string, off int64, e *raftpb.Entry) {
	l := wr.log
	lost := wr.lost
	wr.lost = false
	if l.stoppedAt != 0 {
		return
	}
	if len(l.entries) == 0 {
		l.entries = append(l.entries, e)
		return
	}
	first, last := l.entries[0].GetIndex(), l.lastIndex()
	switch i := e.GetIndex(); {
	case i > last+1:
		if !lost {
			wr.r.damage(path, off, fmt.Sprintf("entry %d follows entry %d: the entries between are missing", i, last))
		}
		l.stoppedAt = last + 1
	case i < first:
		l.entries = append(l.entries[:0], e)
	default:
		l.entries = append(l.entries[:i-first], e)
	}
}

// snapFile is a snapshot file that passed its checks.
type snapFile struct {
	path string
	snap *raftpb.Snapshot
	// dataOff is the offset in the file of the snapshot's data.
	dataOff int64
}

// checkSnapDir checks every snapshot file and returns the good ones by
// name.
func checkSnapDir(r *DataDirReport, snapDir string) (map[string]snapFile, error) {
	des, err := os.ReadDir(snapDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", snapDir, err)
	}
	good := map[string]snapFile{}
	for _, de := range des {
		name, path := de.Name(), filepath.Join(snapDir, de.Name())
		switch {
		case strings.HasSuffix(name, ".snap.db"), strings.HasPrefix(name, "tmp"):
			r.note(path, -1, "left by an interrupted snapshot transfer; a start removes it")
			continue
		case strings.HasSuffix(name, ".broken"):
			r.note(path, -1, "a snapshot a start found damaged and set aside")
			continue
		case !strings.HasSuffix(name, ".snap"):
			r.note(path, -1, "not a snapshot file; ignored")
			continue
		}
		if de.IsDir() {
			r.damage(path, -1, "a directory where a snapshot file belongs")
			continue
		}
		r.SnapFiles = append(r.SnapFiles, path)
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			r.note(path, -1, "removed while it was read (purged by a running node)")
			continue
		}
		if err != nil {
			r.damage(path, -1, "cannot be read: "+err.Error())
			continue
		}
		if s, ok := checkSnapFile(r, path, b); ok {
			good[name] = s
		}
	}
	return good, nil
}

// checkSnapFile decodes a snap file as etcd's snapshotter writes it (see
// writeSnapFile) and checks its CRC. On a mismatch it decodes what it can,
// to say which part of the file is damaged.
func checkSnapFile(r *DataDirReport, path string, b []byte) (snapFile, bool) {
	var storedCRC uint64
	var body []byte
	var bodyOff int64
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			r.damage(path, int64(len(b)-len(rest)), "the file does not decode: a bad field tag")
			return snapFile{}, false
		}
		fieldOff := int64(len(b) - len(rest))
		rest = rest[n:]
		switch {
		case num == snapFileCRCField && typ == protowire.VarintType:
			storedCRC, n = protowire.ConsumeVarint(rest)
		case num == snapFileDataField && typ == protowire.BytesType:
			body, n = protowire.ConsumeBytes(rest)
			bodyOff = int64(len(b)-len(rest)) + int64(n-len(body))
		default:
			n = protowire.ConsumeFieldValue(num, typ, rest)
		}
		if n < 0 {
			r.damage(path, fieldOff, "the file does not decode: a field runs past the end of the file")
			return snapFile{}, false
		}
		rest = rest[n:]
	}
	if len(body) == 0 || storedCRC == 0 {
		r.damage(path, -1, "the file holds no snapshot")
		return snapFile{}, false
	}
	var term, index uint64
	_, nameErr := fmt.Sscanf(filepath.Base(path), snapFileName, &term, &index)
	snap := &raftpb.Snapshot{}
	decodeErr := proto.Unmarshal(body, snap)
	if sum := crc32.Checksum(body, snapCRCTable); sum != uint32(storedCRC) {
		where, what := narrowSnapDamage(body, bodyOff, snap, decodeErr, term, index)
		r.damage(path, where, fmt.Sprintf("CRC mismatch (stored %08x, computed %08x) in the bytes it covers, %d to %d; %s",
			uint32(storedCRC), sum, bodyOff, bodyOff+int64(len(body)), what))
		return snapFile{}, false
	}
	switch md := snap.GetMetadata(); {
	case decodeErr != nil:
		r.damage(path, bodyOff, "the snapshot does not decode: "+decodeErr.Error())
		return snapFile{}, false
	case nameErr == nil && (md.GetTerm() != term || md.GetIndex() != index):
		r.damage(path, -1, fmt.Sprintf("the snapshot is at index %d term %d, but the file name says index %d term %d", md.GetIndex(), md.GetTerm(), index, term))
		return snapFile{}, false
	}
	return snapFile{path: path, snap: snap, dataOff: bodyOff + int64(dataFieldOffset(body))}, true
}

// narrowSnapDamage guesses where in a snapshot body (at bodyOff in its file)
// that failed its CRC the damage lies, from the parts that still decode, and
// returns the file offset where the suspect part starts and a description. A
// flipped byte in the store's data decodes fine, so the last guess is the
// widest.
func narrowSnapDamage(body []byte, bodyOff int64, snap *raftpb.Snapshot, decodeErr error, term, index uint64) (int64, string) {
	if decodeErr != nil {
		return bodyOff, "the snapshot inside does not decode either"
	}
	dataOff := bodyOff + int64(dataFieldOffset(body))
	data := snap.GetData()
	if md := snap.GetMetadata(); md.GetTerm() != term || md.GetIndex() != index {
		return dataOff + int64(len(data)), fmt.Sprintf("its metadata says index %d term %d, not the file name's", md.GetIndex(), md.GetTerm())
	}
	_, appData, _, err := decodeEnvelope(data)
	if err != nil {
		return dataOff, "the member table at its start does not decode"
	}
	storeOff := dataOff + int64(len(data)-len(appData))
	return storeOff, fmt.Sprintf("the metadata and the member table decode, so the damage is likely in the store's data, bytes %d to %d", storeOff, dataOff+int64(len(data)))
}

// dataFieldOffset returns where the data field's bytes start in a marshalled
// raftpb.Snapshot, as writeSnapFile lays it out (data first).
func dataFieldOffset(body []byte) int {
	num, typ, n := protowire.ConsumeTag(body)
	if n < 0 || num != raftSnapDataField || typ != protowire.BytesType {
		return 0
	}
	_, m := protowire.ConsumeVarint(body[n:])
	if m < 0 {
		return 0
	}
	return n + m
}

// replay picks the snapshot a start would load (the newest the WAL recorded
// below its commit index with a good file, as LoadNewestAvailable does) and
// rebuilds the member table from it and the committed entries after it.
func (r *DataDirReport) replay(walDir string, l *walLog, snaps map[string]snapFile) {
	r.Term, r.Commit = l.hardState.GetTerm(), l.hardState.GetCommit()
	var chosen *snapFile
	recorded := slices.DeleteFunc(slices.Clone(l.snapshots), func(s *walpb.Snapshot) bool {
		return s.GetIndex() == 0 || s.GetIndex() > r.Commit
	})
	slices.SortFunc(recorded, func(a, b *walpb.Snapshot) int { return cmp.Compare(b.GetIndex(), a.GetIndex()) })
	for i, s := range recorded {
		name := fmt.Sprintf(snapFileName, s.GetTerm(), s.GetIndex())
		if f, ok := snaps[name]; ok {
			chosen = &f
			break
		}
		if i == 0 {
			what := "the newest snapshot the WAL records has no usable file; a start loads an older one"
			if len(recorded) == 1 {
				what = "the only snapshot the WAL records has no usable file; a start has none to load, and replays the WAL from its beginning"
			}
			r.note(filepath.Join(filepath.Dir(walDir), "snap", name), -1, what)
		}
	}
	members := newMembership()
	if chosen != nil {
		md := chosen.snap.GetMetadata()
		r.SnapshotIndex, r.SnapshotTerm, r.SnapshotFile = md.GetIndex(), md.GetTerm(), chosen.path
		m, appData, streamed, err := decodeEnvelope(chosen.snap.GetData())
		switch {
		case err != nil:
			r.damage(chosen.path, chosen.dataOff, err.Error())
		case streamed:
			r.damage(chosen.path, chosen.dataOff, "the snapshot lacks its data (a streamed envelope)")
		default:
			members, r.StoreSnapshot = m, appData
		}
	}
	r.LastIndex, r.LastTerm = r.SnapshotIndex, r.SnapshotTerm
	ents := l.entries
	if len(ents) > 0 {
		first, last := ents[0].GetIndex(), l.lastIndex()
		switch {
		case first > r.SnapshotIndex+1:
			r.damage(walDir, -1, fmt.Sprintf("the WAL starts at entry %d, but the snapshot a start would load is at %d: entries %d to %d are missing", first, r.SnapshotIndex, r.SnapshotIndex+1, first-1))
			ents = nil
		case last <= r.SnapshotIndex:
			ents = nil
		default:
			ents = ents[r.SnapshotIndex+1-first:]
		}
		if last > r.SnapshotIndex {
			r.LastIndex, r.LastTerm = last, l.entries[len(l.entries)-1].GetTerm()
		}
	}
	applyTo := r.Commit
	switch {
	case l.stoppedAt != 0 || (l.damaged && r.Commit > r.LastIndex):
		applyTo = min(r.Commit, r.LastIndex)
		r.note(walDir, -1, fmt.Sprintf("entries were lost to the damage: the log, the member table and the store are read up to entry %d only", applyTo))
	case r.Commit > r.LastIndex:
		r.damage(walDir, -1, fmt.Sprintf("the hard state commits entry %d, but the log ends at %d", r.Commit, r.LastIndex))
	}
	for _, e := range ents {
		if e.GetIndex() > applyTo {
			break
		}
		r.applyEntry(members, e)
	}
	r.Members = members.list()
	r.Removed = r.Removed || (r.MemberID != 0 && members.isRemoved(r.MemberID))
}

// applyEntry applies a committed entry as the Ready loop does: configuration
// changes and attributes to the member table, the rest to the state machine.
func (r *DataDirReport) applyEntry(m *membership, e *raftpb.Entry) {
	if e.GetType() == raftpb.EntryConfChange {
		cc := &raftpb.ConfChange{}
		if proto.Unmarshal(e.GetData(), cc) == nil && m.check(cc) == nil {
			m.apply(cc)
		}
		return
	}
	switch kind, data := decodeFrame(e.GetData()); kind {
	case kindAttributes:
		// An undecodable one is skipped by every replica alike.
		if a, err := unmarshalAttributes(data); err == nil {
			m.applyAttributes(a)
		}
	case kindCommand:
		r.Committed = append(r.Committed, Entry{Index: e.GetIndex(), Data: data})
	}
}

func (r *DataDirReport) damage(file string, off int64, what string) {
	r.Damage = append(r.Damage, Finding{File: file, Offset: off, What: what})
}

func (r *DataDirReport) note(file string, off int64, what string) {
	r.Notes = append(r.Notes, Finding{File: file, Offset: off, What: what})
}
