package raftnode

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/etcd/server/v3/etcdserver/api/snap"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"
)

// TestWriteSnapFileMatchesSnapshotter checks that writeSnapFile writes the
// very bytes etcd's snapshotter writes for the same snapshot, and that the
// snapshotter reads them back.
func TestWriteSnapFileMatchesSnapshotter(t *testing.T) {
	lg := zaptest.NewLogger(t)
	md := &raftpb.SnapshotMetadata{
		Index: proto.Uint64(1 << 40), Term: proto.Uint64(7),
		ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}},
	}
	for name, parts := range map[string][][]byte{
		"no data":      nil,
		"one part":     {[]byte("state")},
		"header+state": {[]byte("RKVS1 members"), bytes.Repeat([]byte{0xfe, 0x00}, 100_000)},
	} {
		t.Run(name, func(t *testing.T) {
			ours, theirs := t.TempDir(), t.TempDir()
			if err := writeSnapFile(ours, md, parts...); err != nil {
				t.Fatal(err)
			}
			want := &raftpb.Snapshot{Metadata: md, Data: bytes.Join(parts, nil)}
			if err := snap.New(lg, theirs).SaveSnap(want); err != nil {
				t.Fatal(err)
			}
			file := "0000000000000007-0000010000000000.snap"
			got, err := os.ReadFile(filepath.Join(ours, file))
			if err != nil {
				t.Fatal(err)
			}
			expected, err := os.ReadFile(filepath.Join(theirs, file))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, expected) {
				t.Fatalf("snap file differs from the snapshotter's: %d bytes, want %d", len(got), len(expected))
			}
			loaded, err := snap.Read(lg, filepath.Join(ours, file))
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(loaded, want) {
				t.Fatalf("read back %v, want %v", loaded.GetMetadata(), md)
			}
		})
	}
}
