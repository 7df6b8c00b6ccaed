package raftnode

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// checkTornTail decides whether a WAL that ends in an unreadable record was
// torn by a crash (safe to cut: the record was never fsynced, so never
// acknowledged) or damaged before its end (not safe). etcd's decoder reports
// both as io.ErrUnexpectedEOF.
//
// WAL segments are preallocated and zero-filled, and every record is a frame:
// an 8-byte little-endian length word (the low 56 bits the record's size, the
// top byte its padding) and the record. A torn write leaves the last frame's
// length intact and its data short, so every frame still fits in the file. A
// frame claiming more bytes than the file holds is a damaged length, unless
// the file itself was cut short inside that frame, in which case no zeroed
// preallocated space follows it. (A record's own data may end in a few zero
// bytes, so only a long zero run counts as preallocated space; when in doubt
// the member refuses, which costs an operator's attention, never data.)
func checkTornTail(walDir string) error {
	names, err := fileutil.ReadDir(walDir)
	if err != nil {
		return fmt.Errorf("read %s: %w", walDir, err)
	}
	names = slices.DeleteFunc(names, func(n string) bool { return !strings.HasSuffix(n, ".wal") })
	if len(names) == 0 {
		return nil
	}
	path := filepath.Join(walDir, names[len(names)-1])
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	size := info.Size()
	end, err := dataEnd(f, size)
	if err != nil {
		return err
	}
	r := bufio.NewReader(io.NewSectionReader(f, 0, size))
	var off int64
	var word [8]byte
	for off < size {
		if _, err := io.ReadFull(r, word[:]); err != nil {
			return nil // the file ends inside a length word: a torn write
		}
		lenField := int64(binary.LittleEndian.Uint64(word[:]))
		if lenField == 0 {
			return nil // preallocated space: every frame fitted
		}
		recBytes, padBytes := frameSize(uint64(lenField))
		next := off + 8 + recBytes + padBytes
		if next > size || next < off {
			if size-end >= preallocatedRun {
				return fmt.Errorf("%w: %s: the record at offset %d claims %d bytes, past the end of the file, with later data at offset %d; restore the data dir from a replica (remove the member and add it back)",
					ErrCorruptWAL, path, off, recBytes, end)
			}
			return nil // the file was cut inside this frame
		}
		if _, err := r.Discard(int(recBytes + padBytes)); err != nil {
			return nil
		}
		off = next
	}
	return nil
}

// frameSize splits a frame's length word into the size of its record and
// of the padding after it.
func frameSize(lenField uint64) (recBytes, padBytes int64) {
	recBytes = int64(lenField &^ (uint64(0xff) << 56))
	// Padding is marked by the top bit, its size in the low 3 bits of the top
	// byte.
	if lenField&(1<<63) != 0 {
		padBytes = int64((lenField >> 56) & 0x7)
	}
	return recBytes, padBytes
}

// preallocatedRun is the shortest run of trailing zeros taken for the WAL's
// preallocated space rather than the end of a cut record.
const preallocatedRun = 64 << 10

// dataEnd returns the offset just past the last non-zero byte of f.
func dataEnd(f *os.File, size int64) (int64, error) {
	const chunk = 1 << 16
	buf := make([]byte, chunk)
	for hi := size; hi > 0; {
		lo := max(hi-chunk, 0)
		n, err := f.ReadAt(buf[:hi-lo], lo)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("read %s: %w", f.Name(), err)
		}
		for i := n - 1; i >= 0; i-- {
			if buf[i] != 0 {
				return lo + int64(i) + 1, nil
			}
		}
		hi = lo
	}
	return 0, nil
}

// checkEntries refuses entries that no raftkv member writes. The WAL's CRC
// covers a record's data but not its type, so a damaged type can turn a hard
// state into an "entry" that replaces a real one.
func checkEntries(walDir string, ents []*raftpb.Entry) error {
	for _, e := range ents {
		if problem := entryProblem(e); problem != "" {
			return fmt.Errorf("%w: %s: %s", ErrCorruptWAL, walDir, problem)
		}
	}
	return nil
}

// entryProblem says why no raftkv member could have written e, or "".
func entryProblem(e *raftpb.Entry) string {
	switch e.GetType() {
	case raftpb.EntryNormal:
	case raftpb.EntryConfChange:
		cc := &raftpb.ConfChange{}
		if err := proto.Unmarshal(e.GetData(), cc); err != nil || cc.GetNodeId() == 0 || cc.Type == nil {
			return fmt.Sprintf("entry %d is not a valid configuration change", e.GetIndex())
		}
	default:
		return fmt.Sprintf("entry %d has type %s, which raftkv never writes", e.GetIndex(), e.GetType())
	}
	return ""
}
