package kvstore

import (
	"errors"
	"slices"
	"testing"

	"github.com/raftkv/raftkv/raftnode"
)

// TestRebuild rebuilds a store as a member applies its log: an undecodable
// entry is skipped, as every member skips it, but an entry of a newer
// command version is an error, since a member stops there.
func TestRebuild(t *testing.T) {
	put := (&Command{ID: 1, Op: OpPut, Key: []byte("k"), Value: []byte("v")}).Marshal()
	s, skipped, err := Rebuild(nil, []raftnode.Entry{{Index: 1, Data: put}, {Index: 2, Data: []byte{0, 0}}})
	if err != nil || s.Len() != 1 || !slices.Equal(skipped, []uint64{2}) {
		t.Fatalf("Rebuild = %d keys, skipped %v, %v; want 1 key, skipped [2]", s.Len(), skipped, err)
	}
	newer := append([]byte{commandVersion + 1}, put[1:]...)
	if _, _, err := Rebuild(nil, []raftnode.Entry{{Index: 1, Data: put}, {Index: 2, Data: newer}}); !errors.Is(err, ErrNewerCommand) {
		t.Fatalf("Rebuild over a newer entry: %v, want ErrNewerCommand", err)
	}
}
