package raftnode

// A normal log entry holds either a state machine command or something of
// raftnode's own (a member's attributes). raftnode decides how every normal
// entry it proposes is read, so the two can never be mistaken for each
// other whatever bytes the state machine chooses. Two first bytes are
// raftnode's:
//
//	0xFF  a member's attributes (attributes.marshal)
//	0xFE  a state machine command; the rest is the state machine's bytes
//
// Any other first byte starts a state machine command as it is. raftnode
// adds the 0xFE frame only to a command that starts with 0xFE or 0xFF (or
// is empty): kvstore's commands start with their version, so they go into
// the log unchanged, without a copy, and a log stays readable by builds
// that predate this framing. An empty entry is raft's own (a new leader's)
// and carries nothing.
const (
	frameCommand    byte = 0xFE
	frameAttributes byte = 0xFF
)

// entryKind is what a normal entry holds.
type entryKind int

const (
	kindNone entryKind = iota
	kindCommand
	kindAttributes
)

// frameCommandData returns a state machine command as the log holds it:
// unchanged, or framed when its first byte is one of raftnode's.
func frameCommandData(data []byte) []byte {
	if len(data) > 0 && data[0] != frameCommand && data[0] != frameAttributes {
		return data
	}
	out := make([]byte, 1+len(data))
	out[0] = frameCommand
	copy(out[1:], data)
	return out
}

// decodeFrame says what a normal entry's data holds and returns, for a
// command, the state machine's bytes (without copying them), and for
// attributes the data as attributes.marshal wrote it.
func decodeFrame(data []byte) (entryKind, []byte) {
	switch {
	case len(data) == 0:
		return kindNone, nil
	case data[0] == frameAttributes:
		return kindAttributes, data
	case data[0] == frameCommand:
		if len(data) == 1 {
			return kindNone, nil
		}
		return kindCommand, data[1:]
	default: // unframed
		return kindCommand, data
	}
}
