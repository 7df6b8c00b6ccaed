// Package waltest reads etcd WAL segments as they lie on disk and flips bits
// in data-dir files, for the tests that cut or corrupt them the way a crash
// or a bad disk would: raftnode's storage tests and the end-to-end disk
// tests share one reading of the format, so that both damage the bytes they
// mean to.
package waltest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Frame is one record of a WAL segment as it lies on disk: [Off, End) covers
// its 8-byte little-endian length field, the walpb.Record (which ends at
// DataEnd) and the padding to 8 bytes.
type Frame struct {
	Off, DataEnd, End int64
	Entry             *raftpb.Entry // set for entry records only
}

// Frames parses the WAL segment at path as etcd's decoder does, up to the
// first zero length field: segments are preallocated (64 MB) and
// zero-filled, so that is the end of what was written.
func Frames(t testing.TB, path string) []Frame {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []Frame
	for off := int64(0); off+8 <= int64(len(b)); {
		lenField := binary.LittleEndian.Uint64(b[off:])
		if lenField == 0 {
			break
		}
		size := int64(lenField &^ (0xff << 56))
		var pad int64
		if lenField&(1<<63) != 0 {
			pad = int64(lenField>>56) & 0x7
		}
		f := Frame{Off: off, DataEnd: off + 8 + size, End: off + 8 + size + pad}
		if f.End > int64(len(b)) {
			t.Fatalf("%s: the record at %d runs past the end of the file", path, off)
		}
		rec := &walpb.Record{}
		if err := proto.Unmarshal(b[off+8:f.DataEnd], rec); err != nil {
			t.Fatalf("%s: record at %d: %v", path, off, err)
		}
		if rec.GetType() == wal.EntryType {
			f.Entry = &raftpb.Entry{}
			if err := proto.Unmarshal(rec.GetData(), f.Entry); err != nil {
				t.Fatalf("%s: entry at %d: %v", path, off, err)
			}
		}
		out = append(out, f)
		off = f.End
	}
	return out
}

// FlipBits inverts the bits of mask in the byte at off in the file at path.
func FlipBits(t testing.TB, path string, off int64, mask byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= mask
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// DirState lists every file and directory under dir with its mode, size,
// modification time and, for files, a hash of its bytes: anything a write
// could change. Tests compare it before and after a command that must
// only read.
func DirState(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		line := fmt.Sprintf("%s %v %d %d", rel, info.Mode(), info.Size(), info.ModTime().UnixNano())
		if !d.IsDir() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			line += " " + hex.EncodeToString(sum[:8])
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
