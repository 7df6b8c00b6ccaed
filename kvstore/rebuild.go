package kvstore

import (
	"errors"
	"fmt"

	"github.com/raftkv/raftkv/raftnode"
)

// Rebuild makes the store a member would hold after restoring snapshot (nil:
// none) and applying ents, committed after it, as KV applies commits: an
// entry that does not decode as a command is skipped, as every replica
// skips it; their indexes are returned. An entry of a newer command version
// is an error, since a member stops at it. It is how an offline check (raftkv
// data verify) rebuilds a store from a data dir.
func Rebuild(snapshot []byte, ents []raftnode.Entry) (s *Store, skipped []uint64, err error) {
	s = NewStore()
	if snapshot != nil {
		if err := s.Restore(snapshot); err != nil {
			return nil, nil, fmt.Errorf("restore snapshot: %w", err)
		}
	}
	for _, e := range ents {
		cmd, err := UnmarshalCommand(e.Data)
		if errors.Is(err, ErrNewerCommand) {
			// A member of this version stops there (KV.applyCommits).
			return nil, nil, fmt.Errorf("log entry %d: %w", e.Index, err)
		}
		if err != nil {
			skipped = append(skipped, e.Index)
			continue
		}
		s.Apply(e.Index, &cmd)
	}
	return s, skipped, nil
}
