package kvstore

import (
	"errors"
	"fmt"
	"slices"

	"github.com/google/btree"
)

// A lease is a time-to-live that keys can be attached to: when it is
// revoked, by a client or because it expired, every key attached to it is
// deleted in one change. Its record is in this file: the replicated state
// (id and TTL, the keys attached), how the store applies a grant and a
// revoke, and its encoding in a snapshot. When a lease expires is not part
// of the replicated state: only the leader keeps time (lessor.go), and it
// expires a lease by proposing its revoke, so every replica deletes the same
// keys at the same revision.

// Lease limits.
const (
	// MaxLeaseID is the largest lease id, 2^53-1: ids are JSON numbers,
	// and JavaScript reads integers exactly only up to there.
	MaxLeaseID = 1<<53 - 1
	// MaxLeaseTTL is the longest TTL, in milliseconds: etcd's 9e9 seconds.
	MaxLeaseTTL = 9_000_000_000 * 1000
)

// Lease is a lease's replicated state.
type Lease struct {
	ID uint64
	// TTL is the time to live, in milliseconds, a keepalive restores.
	TTL int64
}

// LeaseResult is what a grant gave, or what a revoke removed.
type LeaseResult struct {
	Lease
	// Keys are the keys a revoke deleted, in key order.
	Keys []string
}

// leaseItem is what the store's lease tree holds; never modified once
// inserted, so a cloned tree is a consistent snapshot, as for keys.
type leaseItem struct{ Lease }

func lessLease(a, b *leaseItem) bool { return a.ID < b.ID }

func newLeaseTree() *btree.BTreeG[*leaseItem] { return btree.NewG(btreeDegree, lessLease) }

// leaseNotFound is ErrLeaseNotFound about lease id.
func leaseNotFound(id uint64) error { return fmt.Errorf("lease %d: %w", id, ErrLeaseNotFound) }

// leaseErr names lease id in a lessor's error.
func leaseErr(err error, id uint64) error {
	if errors.Is(err, ErrLeaseNotFound) {
		return leaseNotFound(id)
	}
	return err
}

// validLease reports a lease no store could hold.
func validLease(l Lease) error {
	switch {
	case l.ID == 0 || l.ID > MaxLeaseID:
		return fmt.Errorf("lease id %d is out of range (1 to %d)", l.ID, uint64(MaxLeaseID))
	case l.TTL < 1 || l.TTL > MaxLeaseTTL:
		return fmt.Errorf("lease %d has a TTL of %d ms, out of range (1 to %d)", l.ID, l.TTL, int64(MaxLeaseTTL))
	}
	return nil
}

// grant adds a lease at index. Id 0 asks the store to choose one: the
// grant's log index, or the next free id above it, which every replica
// chooses alike. The caller holds s.mu.
func (s *Store) grant(index uint64, cmd *Command) Result {
	id := cmd.Lease
	if id == 0 {
		for id = index; s.hasLease(id); id++ {
		}
	} else if s.hasLease(id) {
		return Result{Revision: s.revision, Err: fmt.Errorf("lease %d: %w", id, ErrLeaseExists)}
	}
	l := Lease{ID: id, TTL: cmd.TTL}
	if err := validLease(l); err != nil {
		return Result{Revision: s.revision, Err: fmt.Errorf("%w: %s", ErrInvalidLease, err)}
	}
	s.leases.ReplaceOrInsert(&leaseItem{l})
	return Result{Revision: s.revision, Lease: &LeaseResult{Lease: l}}
}

// revoke removes the lease and deletes its keys as one change at index; a
// lease with no keys leaves the revision as it was. The caller holds s.mu.
func (s *Store) revoke(index uint64, id uint64) Result {
	l, ok := s.leases.Delete(&leaseItem{Lease{ID: id}})
	if !ok {
		return Result{Revision: s.revision, Err: leaseNotFound(id)}
	}
	keys := s.attachedKeys(id)
	delete(s.attached, id)
	res := &LeaseResult{Lease: l.Lease, Keys: keys}
	if len(keys) == 0 {
		return Result{Revision: s.revision, Lease: res}
	}
	events := make([]*Event, len(keys))
	for i, k := range keys {
		s.tree.Delete(&entry{key: k})
		events[i] = &Event{Type: EventDelete, Key: []byte(k), Item: Item{ModRevision: index}}
	}
	s.revision = index
	return Result{Revision: index, Deleted: len(keys), Lease: res, Change: Change{Revision: index, Events: events}}
}

func (s *Store) hasLease(id uint64) bool {
	_, ok := s.leases.Get(&leaseItem{Lease{ID: id}})
	return ok
}

// attachedKeys lists the keys attached to id, in key order.
func (s *Store) attachedKeys(id uint64) []string {
	keys := make([]string, 0, len(s.attached[id]))
	for k := range s.attached[id] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// attach records that key is attached to lease id (0: none), detaching it
// from old.
func (s *Store) attach(key string, old, id uint64) {
	if old == id {
		return
	}
	if old != 0 {
		if set := s.attached[old]; set != nil {
			delete(set, key)
			if len(set) == 0 {
				delete(s.attached, old)
			}
		}
	}
	if id != 0 {
		set := s.attached[id]
		if set == nil {
			set = make(map[string]struct{})
			s.attached[id] = set
		}
		set[key] = struct{}{}
	}
}

// indexLeases rebuilds the keys attached to each lease from the tree, after
// a restore.
func indexLeases(tree *btree.BTreeG[*entry]) map[uint64]map[string]struct{} {
	attached := make(map[uint64]map[string]struct{})
	tree.Ascend(func(e *entry) bool {
		if e.Lease != 0 {
			set := attached[e.Lease]
			if set == nil {
				set = make(map[string]struct{})
				attached[e.Lease] = set
			}
			set[e.key] = struct{}{}
		}
		return true
	})
	return attached
}

// LeaseInfo is a lease with the keys attached to it.
type LeaseInfo struct {
	Lease
	Keys []string
}

// Lease returns the lease id with its attached keys, in key order, and the
// store's revision.
func (s *Store) Lease(id uint64) (LeaseInfo, uint64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	l, ok := s.leases.Get(&leaseItem{Lease{ID: id}})
	if !ok {
		return LeaseInfo{}, s.revision, false
	}
	return LeaseInfo{Lease: l.Lease, Keys: s.attachedKeys(id)}, s.revision, true
}

// LeaseCount returns the number of leases.
func (s *Store) LeaseCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.leases.Len()
}

// Leases returns every lease in id order.
func (s *Store) Leases() []Lease {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return collectLeases(s.leases)
}

func collectLeases(t *btree.BTreeG[*leaseItem]) []Lease {
	ls := make([]Lease, 0, t.Len())
	t.Ascend(func(l *leaseItem) bool {
		ls = append(ls, l.Lease)
		return true
	})
	return ls
}
