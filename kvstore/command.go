package kvstore

import (
	"encoding/binary"
	"fmt"
)

// commandVersion is the first byte of every encoded command, so the format can
// change without misreading old log entries. Version 2 added leases: a
// uvarint lease after the condition, and a lease in every put of a
// transaction. Version 1 entries, which a log written before may hold, are
// still read.
const (
	commandVersion   = 2
	commandVersionV1 = 1
)

// Op is the kind of change a command makes.
type Op byte

// The operations a command can carry.
const (
	OpPut         Op = 1
	OpDelete      Op = 2
	OpDeleteRange Op = 3 // Key is the prefix
	OpTxn         Op = 4 // Txn holds the transaction (txn.go)
	OpLeaseGrant  Op = 5 // Lease (0: the store chooses) and TTL (lease.go)
	OpLeaseRevoke Op = 6 // Lease
)

// ConditionKind is what a conditional write requires of the key's current
// state.
type ConditionKind byte

// The conditions a write can carry.
const (
	CondNone        ConditionKind = 0
	CondModRevision ConditionKind = 1 // exists with this mod revision
	CondExists      ConditionKind = 2
	CondAbsent      ConditionKind = 3
)

// Condition guards a put or delete. It is checked inside the state machine,
// atomically with the write.
type Condition struct {
	Kind        ConditionKind
	ModRevision uint64
}

// Command is one change to the store, proposed through raft. Origin is the
// member that proposed it and ID its waiter there; only the origin wakes a
// waiter, so ids need only be unique per member.
type Command struct {
	Origin uint64
	ID     uint64
	Op     Op
	Cond   Condition
	Key    []byte
	Value  []byte
	Txn    *Txn
	// Lease is the lease a put attaches its key to (0: none), or the lease
	// a grant or revoke is about.
	Lease uint64
	// TTL is a grant's time to live, in milliseconds.
	TTL int64
}

// Marshal encodes c compactly: version, op, uvarint origin, uvarint id,
// condition kind (and uvarint revision for CondModRevision), uvarint lease,
// uvarint key length, key, then the value as the rest of the buffer. A
// transaction's encoding is its value, and a grant's uvarint TTL.
func (c *Command) Marshal() []byte {
	value := c.Value
	switch c.Op {
	case OpTxn:
		value = c.Txn.marshal(nil)
	case OpLeaseGrant:
		value = binary.AppendUvarint(nil, uint64(c.TTL))
	}
	buf := make([]byte, 0, 3+5*binary.MaxVarintLen64+len(c.Key)+len(value))
	buf = append(buf, commandVersion, byte(c.Op))
	buf = binary.AppendUvarint(buf, c.Origin)
	buf = binary.AppendUvarint(buf, c.ID)
	buf = append(buf, byte(c.Cond.Kind))
	if c.Cond.Kind == CondModRevision {
		buf = binary.AppendUvarint(buf, c.Cond.ModRevision)
	}
	buf = binary.AppendUvarint(buf, c.Lease)
	buf = binary.AppendUvarint(buf, uint64(len(c.Key)))
	buf = append(buf, c.Key...)
	return append(buf, value...)
}

// UnmarshalCommand decodes a command produced by Marshal. The returned key and
// value alias data.
func UnmarshalCommand(data []byte) (Command, error) {
	var c Command
	if len(data) < 2 {
		return c, fmt.Errorf("%w: %d bytes", ErrCorruptCommand, len(data))
	}
	version := data[0]
	if version > commandVersion {
		return c, fmt.Errorf("%w: command version %d, this build reads up to %d", ErrNewerCommand, version, commandVersion)
	}
	if version != commandVersion && version != commandVersionV1 {
		return c, fmt.Errorf("%w: unknown version %d", ErrCorruptCommand, data[0])
	}
	c.Op = Op(data[1])
	if c.Op < OpPut || c.Op > OpLeaseRevoke || (version == commandVersionV1 && c.Op > OpTxn) {
		return c, fmt.Errorf("%w: unknown op %d", ErrCorruptCommand, c.Op)
	}
	rest := data[2:]
	var ok bool
	if c.Origin, rest, ok = uvarint(rest); !ok {
		return c, fmt.Errorf("%w: bad origin", ErrCorruptCommand)
	}
	if c.ID, rest, ok = uvarint(rest); !ok {
		return c, fmt.Errorf("%w: bad id", ErrCorruptCommand)
	}
	if len(rest) == 0 {
		return c, fmt.Errorf("%w: missing condition", ErrCorruptCommand)
	}
	c.Cond.Kind, rest = ConditionKind(rest[0]), rest[1:]
	switch c.Cond.Kind {
	case CondNone, CondExists, CondAbsent:
	case CondModRevision:
		if c.Cond.ModRevision, rest, ok = uvarint(rest); !ok {
			return c, fmt.Errorf("%w: bad condition revision", ErrCorruptCommand)
		}
	default:
		return c, fmt.Errorf("%w: unknown condition %d", ErrCorruptCommand, c.Cond.Kind)
	}
	if version != commandVersionV1 {
		if c.Lease, rest, ok = uvarint(rest); !ok {
			return c, fmt.Errorf("%w: bad lease", ErrCorruptCommand)
		}
	}
	keyLen, rest, ok := uvarint(rest)
	if !ok || keyLen > uint64(len(rest)) {
		return c, fmt.Errorf("%w: bad key length", ErrCorruptCommand)
	}
	c.Key = rest[:keyLen:keyLen]
	c.Value = rest[keyLen:]
	switch c.Op {
	case OpTxn, OpLeaseGrant, OpLeaseRevoke:
		if c.Cond.Kind != CondNone || len(c.Key) != 0 {
			return c, fmt.Errorf("%w: op %d carries a key or a condition", ErrCorruptCommand, c.Op)
		}
	case OpDelete, OpDeleteRange:
		if c.Lease != 0 {
			return c, fmt.Errorf("%w: a delete carries a lease", ErrCorruptCommand)
		}
	}
	switch c.Op {
	case OpTxn:
		if c.Lease != 0 {
			return c, fmt.Errorf("%w: a transaction carries a lease", ErrCorruptCommand)
		}
		t, err := unmarshalTxn(c.Value, version != commandVersionV1)
		if err != nil {
			return c, err
		}
		c.Txn, c.Value = t, nil
		return c, nil
	case OpLeaseGrant:
		ttl, rest, ok := uvarint(c.Value)
		if !ok || len(rest) != 0 || ttl == 0 || ttl > MaxLeaseTTL {
			return c, fmt.Errorf("%w: bad lease TTL", ErrCorruptCommand)
		}
		c.TTL, c.Value = int64(ttl), nil
		return c, nil
	case OpLeaseRevoke:
		if c.Lease == 0 || len(c.Value) != 0 {
			return c, fmt.Errorf("%w: a revoke without a lease, or with a value", ErrCorruptCommand)
		}
		return c, nil
	}
	if c.Op != OpPut && len(c.Value) != 0 {
		return c, fmt.Errorf("%w: %d carries a value", ErrCorruptCommand, c.Op)
	}
	if c.Op == OpDeleteRange && c.Cond.Kind != CondNone {
		return c, fmt.Errorf("%w: a range delete carries a condition", ErrCorruptCommand)
	}
	return c, nil
}

func uvarint(b []byte) (uint64, []byte, bool) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, b, false
	}
	return v, b[n:], true
}
