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
	OpPut    Op = 1
	OpDelete Op = 2
)

// Command is one change to the store, proposed through raft. Origin is the
// member that proposed it and ID its waiter there; only the origin wakes a
// waiter, so ids need only be unique per member.
type Command struct {
	Origin uint64
	ID     uint64
	Op     Op
	Key    []byte
	Value  []byte
}

// Marshal encodes c compactly: version, op, uvarint origin, uvarint id,
// uvarint key length, key, then the value as the rest of the buffer.
func (c *Command) Marshal() []byte {
	buf := make([]byte, 0, 2+3*binary.MaxVarintLen64+len(c.Key)+len(c.Value))
	buf = append(buf, commandVersion, byte(c.Op))
	buf = binary.AppendUvarint(buf, c.Origin)
	buf = binary.AppendUvarint(buf, c.ID)
	buf = binary.AppendUvarint(buf, uint64(len(c.Key)))
	buf = append(buf, c.Key...)
	return append(buf, c.Value...)
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
	if c.Op != OpPut && c.Op != OpDelete {
		return c, fmt.Errorf("%w: unknown op %d", ErrCorruptCommand, c.Op)
	}
	rest := data[2:]
	origin, n := binary.Uvarint(rest)
	if n <= 0 {
		return c, fmt.Errorf("%w: bad origin", ErrCorruptCommand)
	}
	c.Origin = origin
	rest = rest[n:]
	id, n := binary.Uvarint(rest)
	if n <= 0 {
		return c, fmt.Errorf("%w: bad id", ErrCorruptCommand)
	}
	c.ID = id
	rest = rest[n:]
	keyLen, n := binary.Uvarint(rest)
	if n <= 0 || keyLen > uint64(len(rest)-n) {
		return c, fmt.Errorf("%w: bad key length", ErrCorruptCommand)
	}
	rest = rest[n:]
	c.Key = rest[:keyLen:keyLen]
	c.Value = rest[keyLen:]
	if c.Op == OpDelete && len(c.Value) != 0 {
		return c, fmt.Errorf("%w: delete carries a value", ErrCorruptCommand)
	}
	return c, nil
}
