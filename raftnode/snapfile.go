package raftnode

import (
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// snapFileName is the name etcd's snapshotter gives a snapshot's file, from
// its term and index; its loader and raftkv's purge find files by it.
const snapFileName = "%016x-%016x.snap"

// snapCRCTable is the checksum etcd's snapshotter uses for snap files.
var snapCRCTable = crc32.MakeTable(crc32.Castagnoli)

// Field numbers of the messages a snap file nests: etcd's snappb.Snapshot
// {crc = 1, data = 2} holds a marshalled raftpb.Snapshot {data = 1,
// metadata = 2}.
const (
	snapFileCRCField      protowire.Number = 1
	snapFileDataField     protowire.Number = 2
	raftSnapDataField     protowire.Number = 1
	raftSnapMetadataField protowire.Number = 2
)

// writeSnapFile writes a snapshot whose data is the concatenation of parts
// to dir, byte for byte as etcd's snapshotter would (its Load reads it back),
// and syncs it.
func writeSnapFile(dir string, md *raftpb.SnapshotMetadata, parts ...[]byte) error {
	_, err := writeSnapFileFrom(dir, md, writeParts(parts...))
	return err
}

// writeParts returns a function that writes parts one after the other.
func writeParts(parts ...[]byte) func(io.Writer) error {
	return func(w io.Writer) error {
		for _, p := range parts {
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
		return nil
	}
}

// writeSnapFileFrom writes a snapshot whose data is what data writes, and
// syncs it, as writeSnapFile does. The snapshotter marshals the data twice
// over, into the raftpb message and then into the file's; for a store of
// hundreds of megabytes those copies were most of a node's peak memory. So
// the data is never held whole: data is called three times, to learn its
// length, then its checksum, which the file holds before it, then to write
// it, and must write the same bytes each time. It returns the data's size.
func writeSnapFileFrom(dir string, md *raftpb.SnapshotMetadata, data func(io.Writer) error) (size int64, err error) {
	mdBytes, err := proto.Marshal(md)
	if err != nil {
		return 0, fmt.Errorf("marshal snapshot metadata: %w", err)
	}
	var count countingWriter
	if err := data(&count); err != nil {
		return 0, fmt.Errorf("encode snapshot data: %w", err)
	}
	dataLen := uint64(count)
	// The raftpb.Snapshot message: its data field's key and length, the
	// data, then the metadata field.
	dataPrefix := protowire.AppendTag(nil, raftSnapDataField, protowire.BytesType)
	dataPrefix = protowire.AppendVarint(dataPrefix, dataLen)
	mdField := protowire.AppendTag(nil, raftSnapMetadataField, protowire.BytesType)
	mdField = protowire.AppendBytes(mdField, mdBytes)
	body := func(w io.Writer) error {
		if _, err := w.Write(dataPrefix); err != nil {
			return err
		}
		if err := data(w); err != nil {
			return err
		}
		_, err := w.Write(mdField)
		return err
	}
	crc := crc32.New(snapCRCTable)
	if err := body(crc); err != nil {
		return 0, fmt.Errorf("encode snapshot data: %w", err)
	}
	bodyLen := uint64(len(dataPrefix)) + dataLen + uint64(len(mdField))
	// The snappb.Snapshot message around it, fields in number order as
	// proto.Marshal writes them.
	head := protowire.AppendTag(nil, snapFileCRCField, protowire.VarintType)
	head = protowire.AppendVarint(head, uint64(crc.Sum32()))
	head = protowire.AppendTag(head, snapFileDataField, protowire.BytesType)
	head = protowire.AppendVarint(head, bodyLen)

	path := filepath.Join(dir, fmt.Sprintf(snapFileName, md.GetTerm(), md.GetIndex()))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
	if err != nil {
		return 0, fmt.Errorf("create snap file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close snap file: %w", cerr)
		}
		if err != nil {
			// A partial file fails its CRC on load, but would count as a
			// kept snapshot until then.
			err = errors.Join(err, os.Remove(path))
		}
	}()
	exact := &exactWriter{w: f, left: int64(len(head)) + int64(bodyLen)}
	bw := bufio.NewWriterSize(exact, 1<<20)
	if _, err := bw.Write(head); err != nil {
		return 0, fmt.Errorf("write snap file: %w", err)
	}
	written := crc32.New(snapCRCTable)
	if err := body(io.MultiWriter(written, bw)); err != nil {
		return 0, fmt.Errorf("write snap file: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return 0, fmt.Errorf("write snap file: %w", err)
	}
	if exact.left != 0 || written.Sum32() != crc.Sum32() {
		return 0, fmt.Errorf("write snap file: %w", errSnapDataChanged)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("sync snap file: %w", err)
	}
	return int64(dataLen), nil
}

// countingWriter counts what is written to it.
type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

// exactWriter refuses to write more than left bytes: data that wrote more
// the last time than the first would make a file whose length prefix lies.
// Less shows at the end, and other bytes in the checksum.
type exactWriter struct {
	w    io.Writer
	left int64
}

var errSnapDataChanged = errors.New("snapshot data changed between passes")

func (e *exactWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > e.left {
		return 0, errSnapDataChanged
	}
	n, err := e.w.Write(p)
	e.left -= int64(n)
	return n, err
}
