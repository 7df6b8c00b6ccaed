package kvstore

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/raftkv/raftkv/internal/codec"
)

// A transaction is one command: compares, then the operations of the branch
// they choose, applied in order inside the state machine at one revision.
// Its record is in this file: the types, their encoding inside a Command,
// their validation, and how the store applies them.

// Limits of a transaction, etcd's defaults (--max-txn-ops).
const (
	// MaxTxnCompares bounds the compares of a transaction.
	MaxTxnCompares = 128
	// MaxTxnOps bounds the operations of each branch.
	MaxTxnOps = 128
	// DefaultTxnListLimit and MaxTxnListLimit bound a list inside a
	// transaction, as GET /v1/kv/ bounds a page.
	DefaultTxnListLimit = 1000
	MaxTxnListLimit     = 10000
)

// CompareTarget is what a compare reads of a key.
type CompareTarget byte

// The targets a compare can read. A missing key has version, create and mod
// revision 0, and no value: a compare on the value of a missing key is
// false whatever its operator, as in etcd.
const (
	TargetValue          CompareTarget = 1
	TargetVersion        CompareTarget = 2
	TargetCreateRevision CompareTarget = 3
	TargetModRevision    CompareTarget = 4
	TargetLease          CompareTarget = 5 // the key's lease, 0 for none or a missing key
)

// CompareOp is a compare's operator.
type CompareOp byte

// The operators of a compare; values compare as bytes.
const (
	CompareEqual    CompareOp = 1
	CompareNotEqual CompareOp = 2
	CompareLess     CompareOp = 3
	CompareGreater  CompareOp = 4
)

// Compare is one condition of a transaction: Key's Target compared with
// Value (TargetValue) or Number (the others).
type Compare struct {
	Key    []byte
	Target CompareTarget
	Op     CompareOp
	Value  []byte
	Number uint64
}

// TxnOpKind is what an operation of a transaction does.
type TxnOpKind byte

// The operations of a transaction.
const (
	TxnPut          TxnOpKind = 1
	TxnDelete       TxnOpKind = 2 // a missing key deletes nothing, with no error
	TxnDeletePrefix TxnOpKind = 3
	TxnGet          TxnOpKind = 4
	TxnList         TxnOpKind = 5
)

// TxnOp is one operation: Key is the prefix of TxnDeletePrefix and TxnList;
// Value and Lease (0: none) are TxnPut's; Limit bounds TxnList.
type TxnOp struct {
	Kind  TxnOpKind
	Key   []byte
	Value []byte
	Limit int
	Lease uint64
}

// Txn is a transaction: when every compare holds, Success runs, else
// Failure.
type Txn struct {
	Compares         []Compare
	Success, Failure []TxnOp
}

// TxnOpResult is what one operation did or read: the put's new item (and
// whether it created the key), the number of keys a delete removed, the key
// a get found, or a list's page.
type TxnOpResult struct {
	Kind    TxnOpKind
	Found   bool
	KV      KeyValue
	Created bool
	Deleted int
	KVs     []KeyValue
	More    bool
}

// TxnResult is a transaction's outcome: which branch ran and each of its
// operations' results, in order.
type TxnResult struct {
	Succeeded bool
	Results   []TxnOpResult
}

// Validate reports the first reason no store should apply t: too many
// compares or operations, a bad target or operator, an empty key, a list
// limit out of range, or a key that one branch writes twice (two writes, or
// a write under a prefix the branch also deletes), whose outcome would
// depend on the order of operations in a way a reader of the request would
// not expect. The errors are *TxnError.
func (t *Txn) Validate() error {
	if len(t.Compares) > MaxTxnCompares {
		return txnErrorf("too_many_operations", "%d compares; the limit is %d", len(t.Compares), MaxTxnCompares)
	}
	for i, c := range t.Compares {
		switch {
		case len(c.Key) == 0:
			return txnErrorf("invalid_txn", "compare %d has an empty key", i)
		case c.Target < TargetValue || c.Target > TargetLease:
			return txnErrorf("invalid_txn", "compare %d has an unknown target", i)
		case c.Op < CompareEqual || c.Op > CompareGreater:
			return txnErrorf("invalid_txn", "compare %d has an unknown operator", i)
		}
	}
	for _, branch := range []struct {
		name string
		ops  []TxnOp
	}{{"success", t.Success}, {"failure", t.Failure}} {
		if len(branch.ops) > MaxTxnOps {
			return txnErrorf("too_many_operations", "%d operations in %s; the limit is %d", len(branch.ops), branch.name, MaxTxnOps)
		}
		var written, prefixes []string
		listed := 0
		for i, op := range branch.ops {
			switch {
			case op.Kind < TxnPut || op.Kind > TxnList:
				return txnErrorf("invalid_txn", "%s operation %d has an unknown kind", branch.name, i)
			case len(op.Key) == 0 && op.Kind != TxnDeletePrefix && op.Kind != TxnList:
				return txnErrorf("invalid_txn", "%s operation %d has an empty key", branch.name, i)
			case op.Kind == TxnList && (op.Limit < 1 || op.Limit > MaxTxnListLimit):
				return txnErrorf("invalid_txn", "%s operation %d lists %d keys; the limit must be 1 to %d", branch.name, i, op.Limit, MaxTxnListLimit)
			case op.Kind != TxnPut && len(op.Value) != 0:
				return txnErrorf("invalid_txn", "%s operation %d carries a value", branch.name, i)
			case op.Kind != TxnPut && op.Lease != 0:
				return txnErrorf("invalid_txn", "%s operation %d carries a lease", branch.name, i)
			}
			switch op.Kind {
			case TxnList:
				// One answer holds every list: together they are bounded
				// as one listing page is.
				if listed += op.Limit; listed > MaxTxnListLimit {
					return txnErrorf("too_many_operations", "the lists of %s return up to %d keys together; the limit is %d", branch.name, listed, MaxTxnListLimit)
				}
			case TxnPut, TxnDelete:
				written = append(written, string(op.Key))
			case TxnDeletePrefix:
				prefixes = append(prefixes, string(op.Key))
			}
		}
		if key, ok := writtenTwice(written, prefixes); ok {
			return txnErrorf("duplicate_key", "the %s branch writes %q more than once", branch.name, key)
		}
	}
	return nil
}

// writtenTwice finds a key that two writes of one branch touch.
func writtenTwice(keys, prefixes []string) (string, bool) {
	slices.Sort(keys)
	for i := 1; i < len(keys); i++ {
		if keys[i] == keys[i-1] {
			return keys[i], true
		}
	}
	for i, p := range prefixes {
		for _, k := range keys {
			if strings.HasPrefix(k, p) {
				return k, true
			}
		}
		for j, q := range prefixes {
			if i != j && strings.HasPrefix(q, p) {
				return q, true
			}
		}
	}
	return "", false
}

// TxnError is a transaction refused before it was proposed: Code is the
// API's code for it.
type TxnError struct {
	Code    string
	Message string
}

func (e *TxnError) Error() string { return e.Message }

// Unwrap makes errors.Is(err, ErrInvalidTxn) hold.
func (e *TxnError) Unwrap() error { return ErrInvalidTxn }

func txnErrorf(code, format string, args ...any) error {
	return &TxnError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// marshal appends t's encoding: the compares, then each branch, every
// field a uvarint or a length-prefixed byte string. (Command version 1
// had no lease after each operation's limit.)
func (t *Txn) marshal(buf []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(t.Compares)))
	for _, c := range t.Compares {
		buf = codec.AppendBytes(buf, c.Key)
		buf = binary.AppendUvarint(buf, uint64(c.Target))
		buf = binary.AppendUvarint(buf, uint64(c.Op))
		buf = codec.AppendBytes(buf, c.Value)
		buf = binary.AppendUvarint(buf, c.Number)
	}
	for _, ops := range [][]TxnOp{t.Success, t.Failure} {
		buf = binary.AppendUvarint(buf, uint64(len(ops)))
		for _, op := range ops {
			buf = binary.AppendUvarint(buf, uint64(op.Kind))
			buf = codec.AppendBytes(buf, op.Key)
			buf = codec.AppendBytes(buf, op.Value)
			buf = binary.AppendUvarint(buf, uint64(op.Limit))
			buf = binary.AppendUvarint(buf, op.Lease)
		}
	}
	return buf
}

// unmarshalTxn decodes what marshal wrote, and validates it: a log entry is
// checked as a request is, so no replica applies what another refuses.
// Keys and values alias data.
func unmarshalTxn(data []byte, withLeases bool) (*Txn, error) {
	d := codec.NewDecoder(data)
	t := &Txn{}
	n := d.Uvarint()
	if d.Err() == nil && n > MaxTxnCompares {
		return nil, fmt.Errorf("%w: %d compares", ErrCorruptCommand, n)
	}
	for range n {
		c := Compare{Key: d.Bytes()}
		// Out-of-range numbers become 0, which Validate refuses.
		c.Target, c.Op = CompareTarget(small(d.Uvarint())), CompareOp(small(d.Uvarint()))
		c.Value, c.Number = d.Bytes(), d.Uvarint()
		t.Compares = append(t.Compares, c)
	}
	for _, branch := range []*[]TxnOp{&t.Success, &t.Failure} {
		n := d.Uvarint()
		if d.Err() == nil && n > MaxTxnOps {
			return nil, fmt.Errorf("%w: %d operations", ErrCorruptCommand, n)
		}
		for range n {
			op := TxnOp{Kind: TxnOpKind(small(d.Uvarint())), Key: d.Bytes(), Value: d.Bytes(), Limit: int(min(d.Uvarint(), MaxTxnListLimit+1))}
			if withLeases {
				op.Lease = d.Uvarint()
			}
			*branch = append(*branch, op)
		}
	}
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("%w: transaction: %w", ErrCorruptCommand, err)
	}
	if len(d.Rest()) != 0 {
		return nil, fmt.Errorf("%w: transaction: %d trailing bytes", ErrCorruptCommand, len(d.Rest()))
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("%w: transaction: %w", ErrCorruptCommand, err)
	}
	return t, nil
}

// small is v as a byte-sized enum value, 0 (invalid) when it does not fit.
func small(v uint64) byte {
	if v > 255 {
		return 0
	}
	return byte(v)
}

// holds reports whether c holds against the key's current entry (nil when
// absent).
func (c *Compare) holds(cur *entry) bool {
	if c.Target == TargetValue {
		if cur == nil {
			return false
		}
		return c.Op.holds(bytes.Compare(cur.Value, c.Value))
	}
	var have uint64
	if cur != nil {
		switch c.Target {
		case TargetVersion:
			have = cur.Version
		case TargetCreateRevision:
			have = cur.CreateRevision
		case TargetModRevision:
			have = cur.ModRevision
		case TargetLease:
			have = cur.Lease
		}
	}
	return c.Op.holds(cmp.Compare(have, c.Number))
}

// holds reports whether a comparison that came out as order (-1, 0, 1 for
// have < want, =, >) satisfies o.
func (o CompareOp) holds(order int) bool {
	switch o {
	case CompareEqual:
		return order == 0
	case CompareNotEqual:
		return order != 0
	case CompareLess:
		return order < 0
	case CompareGreater:
		return order > 0
	}
	return false
}

// applyTxn runs t at index: it evaluates the compares, then the chosen
// branch's operations in order, each seeing the ones before it. Everything
// it writes is one change at revision index; a transaction that writes
// nothing leaves the revision as it was. The caller holds s.mu.
func (s *Store) applyTxn(index uint64, t *Txn) Result {
	succeeded := true
	for i := range t.Compares {
		cur, _ := s.tree.Get(&entry{key: string(t.Compares[i].Key)})
		if !t.Compares[i].holds(cur) {
			succeeded = false
			break
		}
	}
	ops := t.Success
	if !succeeded {
		ops = t.Failure
	}
	// A put to a lease that does not exist fails the whole transaction,
	// before it changes anything.
	for _, op := range ops {
		if op.Lease != 0 && !s.hasLease(op.Lease) {
			return Result{Revision: s.revision, Err: leaseNotFound(op.Lease)}
		}
	}
	res := &TxnResult{Succeeded: succeeded, Results: make([]TxnOpResult, len(ops))}
	var events []*Event
	for i, op := range ops {
		r := TxnOpResult{Kind: op.Kind}
		key := string(op.Key)
		switch op.Kind {
		case TxnPut:
			cur, _ := s.tree.Get(&entry{key: key})
			e := s.write(index, key, op.Value, op.Lease, cur)
			r.KV, r.Created = KeyValue{Key: []byte(key), Item: e.Item}, cur == nil
			events = append(events, &Event{Type: EventPut, Key: []byte(key), Item: e.Item})
		case TxnDelete:
			if cur, ok := s.tree.Get(&entry{key: key}); ok {
				s.remove(cur)
				r.Deleted, r.KV, r.Found = 1, KeyValue{Key: []byte(key), Item: cur.Item}, true
				events = append(events, &Event{Type: EventDelete, Key: []byte(key), Item: Item{ModRevision: index}})
			}
		case TxnDeletePrefix:
			var doomed []*entry
			s.tree.AscendGreaterOrEqual(&entry{key: key}, func(e *entry) bool {
				if !strings.HasPrefix(e.key, key) {
					return false
				}
				doomed = append(doomed, e)
				return true
			})
			for _, e := range doomed {
				s.remove(e)
				events = append(events, &Event{Type: EventDelete, Key: []byte(e.key), Item: Item{ModRevision: index}})
			}
			r.Deleted = len(doomed)
		case TxnGet:
			if cur, ok := s.tree.Get(&entry{key: key}); ok {
				r.Found, r.KV = true, KeyValue{Key: []byte(key), Item: cur.Item}
			}
		case TxnList:
			s.tree.AscendGreaterOrEqual(&entry{key: key}, func(e *entry) bool {
				if !strings.HasPrefix(e.key, key) {
					return false
				}
				if len(r.KVs) == op.Limit {
					r.More = true
					return false
				}
				r.KVs = append(r.KVs, KeyValue{Key: []byte(e.key), Item: e.Item})
				return true
			})
		}
		res.Results[i] = r
	}
	if len(events) == 0 {
		return Result{Revision: s.revision, Txn: res}
	}
	// Watchers get a revision's events in key order; no key is written
	// twice (Validate).
	slices.SortFunc(events, func(a, b *Event) int { return bytes.Compare(a.Key, b.Key) })
	s.revision = index
	return Result{Revision: index, Txn: res, Change: Change{Revision: index, Events: events}}
}
