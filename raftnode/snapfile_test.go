package raftnode

import (
	"bytes"
	"errors"
	"io"
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

// TestWriteSnapFileRefusesDataThatChanged: the data is written in passes
// (its length, its checksum, the file); data that writes other bytes in a
// later pass would make a file whose length or checksum lies, so the write
// fails and leaves no file.
func TestWriteSnapFileRefusesDataThatChanged(t *testing.T) {
	md := &raftpb.SnapshotMetadata{Index: proto.Uint64(5), Term: proto.Uint64(1), ConfState: &raftpb.ConfState{Voters: []uint64{1}}}
	for name, third := range map[string]string{"longer": "state!", "shorter": "stat", "other bytes": "STATE"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			calls := 0
			_, err := writeSnapFileFrom(dir, md, func(w io.Writer) error {
				calls++
				data := "state"
				if calls == 3 {
					data = third
				}
				_, err := io.WriteString(w, data)
				return err
			})
			if !errors.Is(err, errSnapDataChanged) {
				t.Fatalf("err = %v, want %v", err, errSnapDataChanged)
			}
			if files, _ := os.ReadDir(dir); len(files) != 0 {
				t.Fatalf("left %d files", len(files))
			}
		})
	}
}
