package raftnode

import (
	"errors"
	"fmt"
	"hash/crc32"
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
// and syncs it. The snapshotter marshals the data twice over, into the
// raftpb message and then into the file's; for a store of hundreds of
// megabytes those copies were most of a node's peak memory, so the parts are
// written where they lie instead.
func writeSnapFile(dir string, md *raftpb.SnapshotMetadata, parts ...[]byte) (err error) {
	mdBytes, err := proto.Marshal(md)
	if err != nil {
		return fmt.Errorf("marshal snapshot metadata: %w", err)
	}
	dataLen := 0
	for _, p := range parts {
		dataLen += len(p)
	}
	// The raftpb.Snapshot message: its data field's key and length, the
	// parts, then the metadata field.
	dataPrefix := protowire.AppendTag(nil, raftSnapDataField, protowire.BytesType)
	dataPrefix = protowire.AppendVarint(dataPrefix, uint64(dataLen))
	mdField := protowire.AppendTag(nil, raftSnapMetadataField, protowire.BytesType)
	mdField = protowire.AppendBytes(mdField, mdBytes)
	body := make([][]byte, 0, len(parts)+2)
	body = append(body, dataPrefix)
	body = append(body, parts...)
	body = append(body, mdField)

	crc, bodyLen := uint32(0), 0
	for _, b := range body {
		crc = crc32.Update(crc, snapCRCTable, b)
		bodyLen += len(b)
	}
	// The snappb.Snapshot message around it, fields in number order as
	// proto.Marshal writes them.
	head := protowire.AppendTag(nil, snapFileCRCField, protowire.VarintType)
	head = protowire.AppendVarint(head, uint64(crc))
	head = protowire.AppendTag(head, snapFileDataField, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(bodyLen))

	path := filepath.Join(dir, fmt.Sprintf(snapFileName, md.GetTerm(), md.GetIndex()))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
	if err != nil {
		return fmt.Errorf("create snap file: %w", err)
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
	for _, b := range append([][]byte{head}, body...) {
		if _, err := f.Write(b); err != nil {
			return fmt.Errorf("write snap file: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync snap file: %w", err)
	}
	return nil
}
