package raftnode

// A normal log entry holds either a state machine command or something of
// raftnode's own (a member's attributes). raftnode writes the first byte of
// every normal entry it proposes, so the two can never be mistaken for each
// other whatever bytes the state machine chooses:
//
//	0xFE  a state machine command; the rest is the state machine's bytes
//	0xFF  a member's attributes (attributes.marshal)
//
// Entries written by builds before this framing hold the state machine's
// bytes alone; kvstore's commands began with their version, 1 or 2, so any
// other first byte is read as such an unframed command. An empty entry is
// raft's own (a new leader's), and carries nothing.
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

// frameCommandData frames a state machine command for the log.
func frameCommandData(data []byte) []byte {
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
	default:
		return kindCommand, data
	}
}
