package kvstore

import (
	"encoding/binary"
	"fmt"
)

// commandVersion is the first byte of every encoded command, so the format can
// change without misreading old log entries.
const commandVersion = 1

// Op is the kind of change a command makes.
type Op byte

// The operations a command can carry.
const (
	OpPut         Op = 1
	OpDelete      Op = 2
	OpDeleteRange Op = 3 // Key is the prefix
	OpTxn         Op = 4 // Txn holds the transaction (txn.go)
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
}

// Marshal encodes c compactly: version, op, uvarint origin, uvarint id,
// condition kind (and uvarint revision for CondModRevision), uvarint key
// length, key, then the value as the rest of the buffer. A transaction's
// encoding is its value.
func (c *Command) Marshal() []byte {
	value := c.Value
	if c.Op == OpTxn {
		value = c.Txn.marshal(nil)
	}
	buf := make([]byte, 0, 3+4*binary.MaxVarintLen64+len(c.Key)+len(value))
	buf = append(buf, commandVersion, byte(c.Op))
	buf = binary.AppendUvarint(buf, c.Origin)
	buf = binary.AppendUvarint(buf, c.ID)
	buf = append(buf, byte(c.Cond.Kind))
	if c.Cond.Kind == CondModRevision {
		buf = binary.AppendUvarint(buf, c.Cond.ModRevision)
	}
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
	if data[0] != commandVersion {
		return c, fmt.Errorf("%w: unknown version %d", ErrCorruptCommand, data[0])
	}
	c.Op = Op(data[1])
	if c.Op < OpPut || c.Op > OpTxn {
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
	keyLen, rest, ok := uvarint(rest)
	if !ok || keyLen > uint64(len(rest)) {
		return c, fmt.Errorf("%w: bad key length", ErrCorruptCommand)
	}
	c.Key = rest[:keyLen:keyLen]
	c.Value = rest[keyLen:]
	if c.Op == OpTxn {
		if c.Cond.Kind != CondNone || len(c.Key) != 0 {
			return c, fmt.Errorf("%w: a transaction carries a key or a condition", ErrCorruptCommand)
		}
		t, err := unmarshalTxn(c.Value)
		if err != nil {
			return c, err
		}
		c.Txn, c.Value = t, nil
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
