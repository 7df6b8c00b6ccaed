package kvstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/raftkv/raftkv/internal/codec"
)

// snapshotMagic starts every encoded store snapshot; the digit is the format
// version.
var snapshotMagic = []byte("RKV1")

// Item is a stored value with its revisions. Revisions are raft log indexes:
// CreateRevision is the index of the write that created the key, ModRevision
// the index of the last write, Version the number of writes since creation.
type Item struct {
	Value          []byte
	CreateRevision uint64
	ModRevision    uint64
	Version        uint64
}

// Result is the outcome of applying one command.
type Result struct {
	// Revision is the store revision after the command: the log index of the
	// command when it changed something.
	Revision uint64
	// Err is the command's own failure (for example ErrKeyNotFound for a
	// delete of a missing key); the store is unchanged when it is set.
	Err error
}

// Store is the deterministic state machine: every replica that applies the
// same commands in the same order holds the same data. It is safe for
// concurrent use; one goroutine applies while many read.
type Store struct {
	mu       sync.RWMutex
	items    map[string]*Item
	revision uint64
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{items: make(map[string]*Item)}
}

// Get returns the item stored under key. Item.Value must not be modified.
func (s *Store) Get(key []byte) (Item, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	it, ok := s.items[string(key)]
	if !ok {
		return Item{}, false
	}
	return *it, true
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
	return len(s.items)
}

// Apply applies cmd, committed at log index, and returns its result.
func (s *Store) Apply(index uint64, cmd *Command) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch cmd.Op {
	case OpPut:
		key := string(cmd.Key)
		// Copy the value: cmd aliases a raft entry that raft may reuse.
		value := bytes.Clone(cmd.Value)
		if value == nil {
			value = []byte{}
		}
		if it, ok := s.items[key]; ok {
			s.items[key] = &Item{Value: value, CreateRevision: it.CreateRevision, ModRevision: index, Version: it.Version + 1}
		} else {
			s.items[key] = &Item{Value: value, CreateRevision: index, ModRevision: index, Version: 1}
		}
		s.revision = index
		return Result{Revision: index}
	case OpDelete:
		key := string(cmd.Key)
		if _, ok := s.items[key]; !ok {
			return Result{Revision: s.revision, Err: ErrKeyNotFound}
		}
		delete(s.items, key)
		s.revision = index
		return Result{Revision: index}
	default:
		return Result{Revision: s.revision, Err: fmt.Errorf("%w: unknown op %d", ErrCorruptCommand, cmd.Op)}
	}
}

// Snapshot encodes the whole store.
func (s *Store) Snapshot() ([]byte, error) { return s.Capture()() }

// Capture freezes the store's current contents and returns a function that
// encodes them, which may run while the store keeps changing: items are never
// modified in place, so copying the map of pointers is enough.
func (s *Store) Capture() func() ([]byte, error) {
	s.mu.RLock()
	items := maps.Clone(s.items)
	revision := s.revision
	s.mu.RUnlock()
	return func() ([]byte, error) { return encodeSnapshot(items, revision), nil }
}

// encodeSnapshot writes keys in order so that equal stores encode to equal
// bytes.
func encodeSnapshot(items map[string]*Item, revision uint64) []byte {
	keys := make([]string, 0, len(items))
	size := len(snapshotMagic) + 2*binary.MaxVarintLen64
	for k, it := range items {
		keys = append(keys, k)
		size += len(k) + len(it.Value) + 5*binary.MaxVarintLen64
	}
	slices.SortFunc(keys, strings.Compare)
	buf := make([]byte, 0, size)
	buf = append(buf, snapshotMagic...)
	buf = binary.AppendUvarint(buf, revision)
	buf = binary.AppendUvarint(buf, uint64(len(keys)))
	for _, k := range keys {
		it := items[k]
		buf = codec.AppendString(buf, k)
		buf = codec.AppendBytes(buf, it.Value)
		buf = binary.AppendUvarint(buf, it.CreateRevision)
		buf = binary.AppendUvarint(buf, it.ModRevision)
		buf = binary.AppendUvarint(buf, it.Version)
	}
	return buf
}

// Restore replaces the store's contents with a snapshot made by Snapshot. On
// error the store is unchanged.
func (s *Store) Restore(data []byte) error {
	items, revision, err := decodeSnapshot(data)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items, s.revision = items, revision
	return nil
}

func decodeSnapshot(data []byte) (map[string]*Item, uint64, error) {
	if !bytes.HasPrefix(data, snapshotMagic) {
		return nil, 0, fmt.Errorf("%w: bad magic", ErrCorruptSnapshot)
	}
	d := codec.NewDecoder(data[len(snapshotMagic):])
	revision := d.Uvarint()
	count := d.Uvarint()
	// Every item takes at least five bytes, which bounds count before it sizes
	// an allocation.
	if d.Err() != nil || count > uint64(len(d.Rest()))/5 {
		return nil, 0, fmt.Errorf("%w: bad header", ErrCorruptSnapshot)
	}
	items := make(map[string]*Item, count)
	for range count {
		key := d.Bytes()
		value := bytes.Clone(d.Bytes())
		if value == nil {
			value = []byte{}
		}
		it := &Item{Value: value, CreateRevision: d.Uvarint(), ModRevision: d.Uvarint(), Version: d.Uvarint()}
		if d.Err() != nil {
			return nil, 0, fmt.Errorf("%w: %w", ErrCorruptSnapshot, d.Err())
		}
		items[string(key)] = it
	}
	if len(d.Rest()) != 0 {
		return nil, 0, fmt.Errorf("%w: %d trailing bytes", ErrCorruptSnapshot, len(d.Rest()))
	}
	return items, revision, nil
}
