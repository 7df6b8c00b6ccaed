package kvstore

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/google/btree"

	"github.com/raftkv/raftkv/internal/codec"
)

// snapshotMagic starts every encoded store snapshot; the digit is the format
// version. Version 2 added leases: each key's lease, and the lease table
// after the keys. Version 1 is still read, as a member may restart on one.
var (
	snapshotMagic   = []byte("RKV2")
	snapshotMagicV1 = []byte("RKV1")
)

// btreeDegree suits in-memory trees of pointers (etcd's index uses 32).
const btreeDegree = 32

// Item is a stored value with its revisions. Revisions are raft log indexes:
// CreateRevision is the index of the write that created the key, ModRevision
// the index of the last write, Version the number of writes since creation.
type Item struct {
	Value          []byte
	CreateRevision uint64
	ModRevision    uint64
	Version        uint64
	// Lease is the lease the key is attached to, 0 for none.
	Lease uint64
}

// KeyValue is a key with its item.
type KeyValue struct {
	Key []byte
	Item
}

// Result is the outcome of applying one command.
type Result struct {
	// Revision is the store revision after the command: the log index of the
	// command when it changed something.
	Revision uint64
	// Item is the key's new state after a put, or its last state before a
	// delete.
	Item Item
	// Created reports a put that created the key.
	Created bool
	// Deleted counts the keys a delete removed.
	Deleted int
	// Err is the command's own failure (ErrKeyNotFound, a
	// *PreconditionError); the store is unchanged when it is set.
	Err error
	// Change lists what the command changed, for watchers.
	Change Change
	// Txn is a transaction's outcome.
	Txn *TxnResult
	// Lease is what a lease grant or revoke did.
	Lease *LeaseResult
}

// entry is what the tree holds. Entries are never modified once inserted, so
// a cloned tree is a consistent snapshot.
type entry struct {
	key string
	Item
}

func lessEntry(a, b *entry) bool { return a.key < b.key }

// Store is the deterministic state machine: every replica that applies the
// same commands in the same order holds the same data. Keys are kept in
// order, so a prefix scan costs O(log n + k). It is safe for concurrent use;
// one goroutine applies while many read.
type Store struct {
	mu       sync.RWMutex
	tree     *btree.BTreeG[*entry]
	revision uint64
	leases   *btree.BTreeG[*leaseItem]
	// attached is the keys attached to each lease, derived from the tree.
	attached map[uint64]map[string]struct{}
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{tree: btree.NewG(btreeDegree, lessEntry), leases: newLeaseTree(), attached: make(map[uint64]map[string]struct{})}
}

// Get returns the item stored under key and the store's revision. Item.Value
// must not be modified.
func (s *Store) Get(key []byte) (Item, uint64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.tree.Get(&entry{key: string(key)})
	if !ok {
		return Item{}, s.revision, false
	}
	return e.Item, s.revision, true
}

// List returns up to limit keys with the prefix that sort after after (all
// of them when after is nil), whether more remain, and the store's revision.
func (s *Store) List(prefix, after []byte, limit int) (kvs []KeyValue, more bool, revision uint64) {
	return s.ListUnder([][]byte{prefix}, after, limit)
}

// ListUnder is List over several prefixes at once, at one revision: the
// keys under any of them, in key order. No prefix may be a prefix of
// another, so that their ranges are apart and follow their order once
// sorted.
func (s *Store) ListUnder(prefixes [][]byte, after []byte, limit int) (kvs []KeyValue, more bool, revision uint64) {
	prefixes = slices.SortedFunc(slices.Values(prefixes), bytes.Compare)
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, prefix := range prefixes {
		start := string(prefix)
		if after != nil && string(after) >= start {
			start = string(after) + "\x00" // the smallest key after it
		}
		s.tree.AscendGreaterOrEqual(&entry{key: start}, func(e *entry) bool {
			if !strings.HasPrefix(e.key, string(prefix)) {
				return false
			}
			if len(kvs) == limit {
				more = true
				return false
			}
			kvs = append(kvs, KeyValue{Key: []byte(e.key), Item: e.Item})
			return true
		})
		if more {
			break
		}
	}
	return kvs, more, s.revision
}

// Revision returns the revision of the last change.
func (s *Store) Revision() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.revision
}

// Len returns the number of keys.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tree.Len()
}

// Apply applies cmd, committed at log index, and returns its result.
func (s *Store) Apply(index uint64, cmd *Command) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch cmd.Op {
	case OpPut:
		return s.put(index, cmd)
	case OpDelete:
		return s.delete(index, cmd)
	case OpDeleteRange:
		return s.deleteRange(index, cmd.Key)
	case OpLeaseGrant:
		return s.grant(index, cmd)
	case OpLeaseRevoke:
		return s.revoke(index, cmd.Lease)
	case OpTxn:
		if cmd.Txn == nil {
			return Result{Revision: s.revision, Err: fmt.Errorf("%w: a transaction without its operations", ErrCorruptCommand)}
		}
		return s.applyTxn(index, cmd.Txn)
	default:
		return Result{Revision: s.revision, Err: fmt.Errorf("%w: unknown op %d", ErrCorruptCommand, cmd.Op)}
	}
}

// check evaluates a condition against the current entry (nil when absent).
func check(cond Condition, cur *entry) error {
	var ok bool
	switch cond.Kind {
	case CondNone:
		return nil
	case CondModRevision:
		ok = cur != nil && cur.ModRevision == cond.ModRevision
	case CondExists:
		ok = cur != nil
	case CondAbsent:
		ok = cur == nil
	}
	if ok {
		return nil
	}
	pe := &PreconditionError{Condition: cond}
	if cur != nil {
		pe.Exists, pe.Current = true, cur.Item
	}
	return pe
}

func (s *Store) put(index uint64, cmd *Command) Result {
	key := string(cmd.Key)
	cur, _ := s.tree.Get(&entry{key: key})
	if err := check(cmd.Cond, cur); err != nil {
		return Result{Revision: s.revision, Err: err}
	}
	if cmd.Lease != 0 && !s.hasLease(cmd.Lease) {
		return Result{Revision: s.revision, Err: leaseNotFound(cmd.Lease)}
	}
	e := s.write(index, key, cmd.Value, cmd.Lease, cur)
	s.revision = index
	ev := &Event{Type: EventPut, Key: []byte(key), Item: e.Item}
	return Result{Revision: index, Item: e.Item, Created: cur == nil, Change: Change{Revision: index, Events: []*Event{ev}}}
}

// write stores value under key at index, attached to lease (0: none; the
// caller checked that it exists), over cur, the key's entry (nil when
// absent), and returns the new entry. A put without a lease detaches the
// key, as in etcd. The caller holds s.mu and sets the revision.
func (s *Store) write(index uint64, key string, value []byte, lease uint64, cur *entry) *entry {
	// Copy the value: it aliases a raft entry that raft may reuse.
	value = bytes.Clone(value)
	if value == nil {
		value = []byte{}
	}
	e := &entry{key: key, Item: Item{Value: value, CreateRevision: index, ModRevision: index, Version: 1, Lease: lease}}
	var old uint64
	if cur != nil {
		e.CreateRevision, e.Version, old = cur.CreateRevision, cur.Version+1, cur.Lease
	}
	s.tree.ReplaceOrInsert(e)
	s.attach(key, old, lease)
	return e
}

// remove deletes e, detaching it from its lease. The caller holds s.mu.
func (s *Store) remove(e *entry) {
	s.tree.Delete(e)
	s.attach(e.key, e.Lease, 0)
}

func (s *Store) delete(index uint64, cmd *Command) Result {
	key := string(cmd.Key)
	cur, ok := s.tree.Get(&entry{key: key})
	if err := check(cmd.Cond, cur); err != nil {
		return Result{Revision: s.revision, Err: err}
	}
	if !ok {
		return Result{Revision: s.revision, Err: ErrKeyNotFound}
	}
	s.remove(cur)
	s.revision = index
	ev := &Event{Type: EventDelete, Key: []byte(key), Item: Item{ModRevision: index}}
	return Result{Revision: index, Item: cur.Item, Deleted: 1, Change: Change{Revision: index, Events: []*Event{ev}}}
}

func (s *Store) deleteRange(index uint64, prefix []byte) Result {
	var doomed []*entry
	s.tree.AscendGreaterOrEqual(&entry{key: string(prefix)}, func(e *entry) bool {
		if !strings.HasPrefix(e.key, string(prefix)) {
			return false
		}
		doomed = append(doomed, e)
		return true
	})
	if len(doomed) == 0 {
		return Result{Revision: s.revision}
	}
	events := make([]*Event, len(doomed))
	for i, e := range doomed {
		s.remove(e)
		events[i] = &Event{Type: EventDelete, Key: []byte(e.key), Item: Item{ModRevision: index}}
	}
	s.revision = index
	return Result{Revision: index, Deleted: len(doomed), Change: Change{Revision: index, Events: events}}
}

// Snapshot encodes the whole store.
func (s *Store) Snapshot() ([]byte, error) {
	var b bytes.Buffer
	err := s.Capture()(&b)
	return b.Bytes(), err
}

// Capture freezes the store's current contents and returns a function that
// writes their encoding, which may run while the store keeps changing, and
// writes the same bytes every time.
func (s *Store) Capture() func(io.Writer) error {
	f := s.Freeze()
	return func(w io.Writer) error { return writeSnapshot(w, f) }
}

// Frozen is the store's contents at one revision. The tree is cloned
// copy-on-write, which costs O(1) when frozen and a node copy per later
// write, so a frozen view can be read for as long as a backup takes to
// stream while the store goes on changing.
type Frozen struct {
	tree     *btree.BTreeG[*entry]
	leases   *btree.BTreeG[*leaseItem]
	revision uint64
}

// Freeze returns the store's contents as they are now.
func (s *Store) Freeze() Frozen {
	s.mu.Lock() // Clone updates the tree's copy-on-write state
	defer s.mu.Unlock()
	return Frozen{tree: s.tree.Clone(), leases: s.leases.Clone(), revision: s.revision}
}

// Leases is the lease table, in id order.
func (f Frozen) Leases() []Lease { return collectLeases(f.leases) }

// Revision is the revision of the last change the view holds.
func (f Frozen) Revision() uint64 { return f.revision }

// Len is the number of keys.
func (f Frozen) Len() int { return f.tree.Len() }

// Ascend calls fn with every key in order until fn returns false. The
// KeyValue's bytes must not be modified.
func (f Frozen) Ascend(fn func(KeyValue) bool) {
	f.tree.Ascend(func(e *entry) bool {
		return fn(KeyValue{Key: unsafeBytes(e.key), Item: e.Item})
	})
}

// Hash returns a SHA-256 over the store's contents (every key with its value
// and revisions, in key order) and the revision it covers. Replicas that
// applied the same log hash alike, which is how a test or an operator checks
// that they converged without comparing every key, and how a backup is
// compared with the cluster it came from. It works on a copy-on-write
// capture, so applying goes on meanwhile.
func (s *Store) Hash() (string, uint64) {
	f := s.Freeze()
	var h Hasher
	f.Ascend(func(kv KeyValue) bool { h.Add(kv); return true })
	for _, l := range f.Leases() {
		h.AddLease(l)
	}
	return h.Sum(), f.revision
}

// Hasher computes Store.Hash over key-values given in key order, for
// contents that are not in a store: a backup file.
type Hasher struct {
	h   hash.Hash
	buf []byte
}

// Add hashes the next key-value.
func (h *Hasher) Add(kv KeyValue) {
	if h.h == nil {
		h.h = sha256.New()
	}
	h.buf = append(h.buf[:0], 'k')
	h.buf = codec.AppendBytes(h.buf, kv.Key)
	h.buf = codec.AppendBytes(h.buf, kv.Value)
	h.buf = binary.AppendUvarint(h.buf, kv.CreateRevision)
	h.buf = binary.AppendUvarint(h.buf, kv.ModRevision)
	h.buf = binary.AppendUvarint(h.buf, kv.Version)
	h.buf = binary.AppendUvarint(h.buf, kv.Lease)
	h.h.Write(h.buf)
}

// AddLease hashes a lease, after every key-value, in id order.
func (h *Hasher) AddLease(l Lease) {
	if h.h == nil {
		h.h = sha256.New()
	}
	h.buf = append(h.buf[:0], 'l')
	h.buf = binary.AppendUvarint(h.buf, l.ID)
	h.buf = binary.AppendUvarint(h.buf, uint64(l.TTL))
	h.h.Write(h.buf)
}

// Sum returns the hash in hex.
func (h *Hasher) Sum() string {
	if h.h == nil {
		h.h = sha256.New()
	}
	return hex.EncodeToString(h.h.Sum(nil))
}

// SnapshotEncoder builds the snapshot a store holding given key-values at a
// revision would make, from the key-values in strictly increasing key
// order: what a restored backup seeds a new member with. It writes them as
// they come, so building a snapshot costs its size and no tree.
type SnapshotEncoder struct {
	buf      []byte
	revision uint64
	want, n  uint64
	prev     []byte
	leases   []Lease
	known    map[uint64]bool
	err      error
}

// NewSnapshotEncoder starts a snapshot of count keys and the leases at
// revision; sizeHint, when known, is about the bytes the keys and values
// take. It refuses leases out of id order or out of range.
func NewSnapshotEncoder(revision, count uint64, leases []Lease, sizeHint int) *SnapshotEncoder {
	buf := make([]byte, 0, len(snapshotMagic)+2*binary.MaxVarintLen64+max(sizeHint, 0))
	buf = append(buf, snapshotMagic...)
	buf = binary.AppendUvarint(buf, revision)
	buf = binary.AppendUvarint(buf, count)
	e := &SnapshotEncoder{buf: buf, revision: revision, want: count, leases: leases, known: make(map[uint64]bool, len(leases))}
	for i, l := range leases {
		if err := validLease(l); err != nil {
			e.err = fmt.Errorf("%w: %s", ErrCorruptSnapshot, err)
		} else if i > 0 && l.ID <= leases[i-1].ID {
			e.err = fmt.Errorf("%w: leases out of order at %d", ErrCorruptSnapshot, l.ID)
		}
		e.known[l.ID] = true
	}
	return e
}

// Add appends the next key-value. It refuses one out of order, one no store
// at the revision could hold, and one more than the count.
func (e *SnapshotEncoder) Add(kv KeyValue) error {
	switch {
	case e.err != nil:
	case e.n == e.want:
		e.err = fmt.Errorf("%w: more than the %d keys announced", ErrCorruptSnapshot, e.want)
	case e.n > 0 && bytes.Compare(e.prev, kv.Key) >= 0:
		e.err = fmt.Errorf("%w: keys out of order at %q", ErrCorruptSnapshot, kv.Key)
	case kv.Lease != 0 && !e.known[kv.Lease]:
		e.err = fmt.Errorf("%w: key %q is attached to lease %d, which is not in the lease table", ErrCorruptSnapshot, kv.Key, kv.Lease)
	default:
		e.err = checkItem(kv, e.revision)
	}
	if e.err != nil {
		return e.err
	}
	e.buf = codec.AppendBytes(e.buf, kv.Key)
	// The key as written: bytes of buf never change, even once buf grows.
	e.prev = e.buf[len(e.buf)-len(kv.Key):]
	e.buf = codec.AppendBytes(e.buf, kv.Value)
	e.buf = binary.AppendUvarint(e.buf, kv.CreateRevision)
	e.buf = binary.AppendUvarint(e.buf, kv.ModRevision)
	e.buf = binary.AppendUvarint(e.buf, kv.Version)
	e.buf = binary.AppendUvarint(e.buf, kv.Lease)
	e.n++
	return nil
}

// Bytes returns the snapshot once every announced key was added.
func (e *SnapshotEncoder) Bytes() ([]byte, error) {
	if e.err == nil && e.n != e.want {
		e.err = fmt.Errorf("%w: %d keys of the %d announced", ErrCorruptSnapshot, e.n, e.want)
	}
	if e.err != nil {
		return nil, e.err
	}
	return appendLeases(e.buf, e.leases), nil
}

func appendLeases(buf []byte, leases []Lease) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(leases)))
	for _, l := range leases {
		buf = binary.AppendUvarint(buf, l.ID)
		buf = binary.AppendUvarint(buf, uint64(l.TTL))
	}
	return buf
}

// checkItem reports an item no store at revision could hold: an empty key,
// or revisions out of their order (created ≤ modified ≤ revision, at least
// one write).
func checkItem(kv KeyValue, revision uint64) error {
	switch {
	case len(kv.Key) == 0:
		return fmt.Errorf("%w: empty key", ErrCorruptSnapshot)
	case kv.CreateRevision == 0 || kv.CreateRevision > kv.ModRevision || kv.ModRevision > revision || kv.Version == 0:
		return fmt.Errorf("%w: key %q has revisions create %d, mod %d, version %d at store revision %d",
			ErrCorruptSnapshot, kv.Key, kv.CreateRevision, kv.ModRevision, kv.Version, revision)
	}
	return nil
}

// writeSnapshot writes entries in key order and leases in id order, so
// equal stores encode to equal bytes. One entry at a time: a store of a
// million keys used to be encoded into one buffer first, which cost as much
// memory again as the store while a snapshot was being written.
func writeSnapshot(w io.Writer, f Frozen) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	buf := make([]byte, 0, 256)
	buf = append(buf, snapshotMagic...)
	buf = binary.AppendUvarint(buf, f.revision)
	buf = binary.AppendUvarint(buf, uint64(f.tree.Len()))
	_, err := bw.Write(buf)
	f.tree.Ascend(func(e *entry) bool {
		if err != nil {
			return false
		}
		buf = codec.AppendString(buf[:0], e.key)
		buf = codec.AppendBytes(buf, e.Value)
		buf = binary.AppendUvarint(buf, e.CreateRevision)
		buf = binary.AppendUvarint(buf, e.ModRevision)
		buf = binary.AppendUvarint(buf, e.Version)
		buf = binary.AppendUvarint(buf, e.Lease)
		_, err = bw.Write(buf)
		return true
	})
	if err != nil {
		return err
	}
	if _, err := bw.Write(appendLeases(buf[:0], f.Leases())); err != nil {
		return err
	}
	return bw.Flush()
}

// Restore replaces the store's contents with a snapshot made by Snapshot. On
// error the store is unchanged.
func (s *Store) Restore(data []byte) error {
	f, err := decodeSnapshot(data)
	if err != nil {
		return err
	}
	attached := indexLeases(f.tree)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tree, s.leases, s.attached, s.revision = f.tree, f.leases, attached, f.revision
	return nil
}

func decodeSnapshot(data []byte) (Frozen, error) {
	withLeases := bytes.HasPrefix(data, snapshotMagic)
	if !withLeases && !bytes.HasPrefix(data, snapshotMagicV1) {
		return Frozen{}, fmt.Errorf("%w: bad magic", ErrCorruptSnapshot)
	}
	d := codec.NewDecoder(data[len(snapshotMagic):])
	revision := d.Uvarint()
	count := d.Uvarint()
	// Every item takes at least five bytes, which bounds count before it sizes
	// anything.
	if d.Err() != nil || count > uint64(len(d.Rest()))/5 {
		return Frozen{}, fmt.Errorf("%w: bad header", ErrCorruptSnapshot)
	}
	f := Frozen{tree: btree.NewG(btreeDegree, lessEntry), leases: newLeaseTree(), revision: revision}
	prev := ""
	for i := range count {
		key := string(d.Bytes())
		value := bytes.Clone(d.Bytes())
		if value == nil {
			value = []byte{}
		}
		e := &entry{key: key, Item: Item{Value: value, CreateRevision: d.Uvarint(), ModRevision: d.Uvarint(), Version: d.Uvarint()}}
		if withLeases {
			e.Lease = d.Uvarint()
		}
		if d.Err() != nil {
			return Frozen{}, fmt.Errorf("%w: %w", ErrCorruptSnapshot, d.Err())
		}
		if i > 0 && key <= prev {
			return Frozen{}, fmt.Errorf("%w: keys out of order", ErrCorruptSnapshot)
		}
		prev = key
		f.tree.ReplaceOrInsert(e)
	}
	if withLeases {
		n := d.Uvarint()
		if d.Err() != nil || n > uint64(len(d.Rest()))/2 {
			return Frozen{}, fmt.Errorf("%w: bad lease count", ErrCorruptSnapshot)
		}
		var last uint64
		for range n {
			l := Lease{ID: d.Uvarint(), TTL: int64(min(d.Uvarint(), MaxLeaseTTL+1))}
			if d.Err() != nil {
				return Frozen{}, fmt.Errorf("%w: %w", ErrCorruptSnapshot, d.Err())
			}
			if err := validLease(l); err != nil {
				return Frozen{}, fmt.Errorf("%w: %s", ErrCorruptSnapshot, err)
			}
			if l.ID <= last {
				return Frozen{}, fmt.Errorf("%w: leases out of order", ErrCorruptSnapshot)
			}
			last = l.ID
			f.leases.ReplaceOrInsert(&leaseItem{l})
		}
	}
	if len(d.Rest()) != 0 {
		return Frozen{}, fmt.Errorf("%w: %d trailing bytes", ErrCorruptSnapshot, len(d.Rest()))
	}
	var orphan error
	f.tree.Ascend(func(e *entry) bool {
		if e.Lease != 0 {
			if _, ok := f.leases.Get(&leaseItem{Lease{ID: e.Lease}}); !ok {
				orphan = fmt.Errorf("%w: key %q is attached to lease %d, which is not in the lease table", ErrCorruptSnapshot, e.key, e.Lease)
				return false
			}
		}
		return true
	})
	if orphan != nil {
		return Frozen{}, orphan
	}
	return f, nil
}

// unsafeBytes views s as bytes without a copy; the bytes must not be
// modified. Keys are strings in the tree (cheap comparisons) and bytes in
// the API; a backup streams every key, so the copy is worth avoiding.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
