package robustness

import (
	"fmt"
	"hash/fnv"
	"strconv"

	"github.com/anishathalye/porcupine"
)

// The model is a porcupine.Model of one key of the store, partitioned by key:
// raftkv applies every command in raft log order, so a history is
// linearizable if and only if the history of each key is.
//
// Besides values and existence it checks what the API says about revisions,
// which are raft log indexes (docs/API.md):
//
//   - a write's revision is above every revision that an operation
//     linearized before it reported for the key (its earlier writes, and the
//     store revision its earlier reads were served at);
//   - a read's store revision is at least that, and at least the key's mod
//     revision;
//   - a put reports the key's new mod revision, create revision and version
//     (1 on creation, +1 on every later put), and whether it created the
//     key; reads report the same three numbers;
//   - a failed condition (412) reports the key's current mod revision.
//
// These hold in the linearization that orders writes by revision and puts
// each read right after the write its store revision names, which respects
// real time whenever raftkv keeps its promises; so they never reject a
// correct history, and they catch lost, duplicated and reordered writes
// that values alone would not show.
//
// An operation whose outcome is unknown (a 504, a broken connection, a
// client timeout) has output status unknown and the return time
// math.MaxInt64: porcupine may linearize it anywhere after its call,
// including after every other operation, where it changes nothing that was
// observed. The step function therefore applies it as if it succeeded; "it
// never happened" is the linearization that puts it last.

// opKind is what an operation does.
type opKind uint8

const (
	opGet opKind = iota
	opPut
	opDelete
)

// condKind is the precondition of a write.
type condKind uint8

const (
	condNone   condKind = iota
	condModRev          // If-Match: "<rev>"
	condAbsent          // If-None-Match: *
)

// MarshalText names the kinds in history.json.
func (k opKind) MarshalText() ([]byte, error) {
	return []byte([...]string{"get", "put", "delete"}[k]), nil
}

// MarshalText names the conditions in history.json.
func (c condKind) MarshalText() ([]byte, error) {
	return []byte([...]string{"none", "mod_revision", "absent"}[c]), nil
}

// kvInput is an operation's request.
type kvInput struct {
	Kind    opKind   `json:"kind"`
	Key     string   `json:"key"`
	Value   string   `json:"value,omitempty"`
	Cond    condKind `json:"cond,omitempty"`
	CondRev uint64   `json:"cond_rev,omitempty"`
	// Serializable marks a read served from the node's local state.
	Serializable bool `json:"serializable,omitempty"`
	// ValueRev is, for a put whose outcome is unknown, the revision at which
	// another operation saw its value (0 when none did). Values are unique,
	// so if the put happened, that was its revision. Set by prepareHistory.
	ValueRev uint64 `json:"value_rev,omitempty"`
}

// status is how an operation ended.
type status uint8

const (
	stOK           status = iota
	stNotFound            // 404 key_not_found
	stPrecondition        // 412 precondition_failed
	stUnknown             // may or may not have been applied
)

// MarshalText names the statuses in history.json.
func (s status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s status) String() string {
	switch s {
	case stOK:
		return "ok"
	case stNotFound:
		return "not found"
	case stPrecondition:
		return "precondition failed"
	default:
		return "unknown"
	}
}

// kvOutput is an operation's answer.
type kvOutput struct {
	Status status `json:"status"`
	// Value is what a get read.
	Value string `json:"value,omitempty"`
	// Rev is a write's revision, a read's mod revision, or, for a 412, the
	// key's current mod revision (0 when it does not exist).
	Rev       uint64 `json:"rev,omitempty"`
	ModRev    uint64 `json:"mod_rev,omitempty"` // a put's reported mod revision
	CreateRev uint64 `json:"create_rev,omitempty"`
	Version   uint64 `json:"version,omitempty"`
	Created   bool   `json:"created,omitempty"`
	Deleted   int64  `json:"deleted,omitempty"`
	// StoreRev is the store revision a get was served at.
	StoreRev uint64 `json:"store_rev,omitempty"`
}

// keyState is the model's state of one key. A zero ModRev or CreateRev
// while the key exists means "not known": the write that set it had an
// unknown outcome and nobody saw its revision; the first answer that shows
// it fixes it.
type keyState struct {
	Exists    bool
	Value     string
	ModRev    uint64
	CreateRev uint64
	Version   uint64
	// Floor is the largest revision reported by an operation linearized so
	// far; every later write must be above it, every later read at or above.
	Floor uint64
}

// kvModel is the partitioned model.
var kvModel = porcupine.Model{
	Partition:      partitionByKey,
	PartitionEvent: partitionEventsByKey,
	Init:           func() any { return keyState{} },
	Step: func(state, input, output any) (bool, any) {
		return step(state.(keyState), input.(kvInput), output.(kvOutput))
	},
	Hash:                      hashState,
	DescribeOperation:         describeOperation,
	DescribeState:             func(s any) string { return describeState(s.(keyState)) },
	DescribeOperationMetadata: func(m any) string { return fmt.Sprint(m) },
}

func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	var keys []string
	for _, op := range history {
		k := op.Input.(kvInput).Key
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], op)
	}
	out := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		out = append(out, byKey[k])
	}
	return out
}

func partitionEventsByKey(history []porcupine.Event) [][]porcupine.Event {
	keyOf := map[int]string{} // call event id → key
	byKey := map[string][]porcupine.Event{}
	var keys []string
	for _, e := range history {
		if e.Kind == porcupine.CallEvent {
			keyOf[e.Id] = e.Value.(kvInput).Key
		}
		k := keyOf[e.Id]
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], e)
	}
	out := make([][]porcupine.Event, 0, len(keys))
	for _, k := range keys {
		out = append(out, byKey[k])
	}
	return out
}

// step is the sequential specification of one key.
func step(s keyState, in kvInput, out kvOutput) (bool, keyState) {
	switch in.Kind {
	case opGet:
		return stepGet(s, out)
	case opPut:
		return stepPut(s, in, out)
	case opDelete:
		return stepDelete(s, in, out)
	}
	return false, s
}

func stepGet(s keyState, out kvOutput) (bool, keyState) {
	switch out.Status {
	case stNotFound:
		return !s.Exists, s
	case stOK:
		if !s.Exists || out.Value != s.Value || out.Version != s.Version ||
			!revMatches(s.ModRev, out.Rev) || !revMatches(s.CreateRev, out.CreateRev) ||
			out.StoreRev < out.Rev || out.StoreRev < s.Floor {
			return false, s
		}
		s.ModRev, s.CreateRev, s.Floor = out.Rev, out.CreateRev, out.StoreRev
		return true, s
	case stUnknown: // a read changes nothing; the harness leaves these out anyway
		return true, s
	}
	return false, s
}

func stepPut(s keyState, in kvInput, out kvOutput) (bool, keyState) {
	holds := condHolds(s, in)
	switch out.Status {
	case stPrecondition:
		return preconditionFailed(s, in, holds, out.Rev)
	case stOK:
		if !holds || out.Rev <= s.Floor || out.ModRev != out.Rev || out.Created == s.Exists {
			return false, s
		}
		next := putResult(s, in.Value, out.Rev)
		if out.Version != next.Version || !revMatches(next.CreateRev, out.CreateRev) {
			return false, s
		}
		next.CreateRev = out.CreateRev
		return true, next
	case stUnknown:
		if !holds {
			return true, s
		}
		if in.ValueRev != 0 && in.ValueRev <= s.Floor {
			return false, s
		}
		return true, putResult(s, in.Value, in.ValueRev)
	}
	return false, s
}

// putResult is the state after a put of value at revision rev (0: unknown).
func putResult(s keyState, value string, rev uint64) keyState {
	next := keyState{Exists: true, Value: value, ModRev: rev, CreateRev: rev, Version: 1, Floor: max(s.Floor, rev)}
	if s.Exists {
		next.CreateRev, next.Version = s.CreateRev, s.Version+1
	}
	return next
}

func stepDelete(s keyState, in kvInput, out kvOutput) (bool, keyState) {
	holds := condHolds(s, in)
	switch out.Status {
	case stNotFound: // only an unconditional delete of a missing key
		return in.Cond == condNone && !s.Exists, s
	case stPrecondition:
		return preconditionFailed(s, in, holds, out.Rev)
	case stOK:
		if !holds || !s.Exists || out.Rev <= s.Floor || out.Deleted != 1 {
			return false, s
		}
		return true, keyState{Floor: out.Rev}
	case stUnknown:
		if !holds || !s.Exists {
			return true, s
		}
		return true, keyState{Floor: s.Floor}
	}
	return false, s
}

// condHolds evaluates a write's precondition. A known revision is compared;
// an unknown one never equals the condition: the harness takes conditions
// only from revisions it saw together with a value, and revisions are
// unique, so a revision nobody saw cannot be one of them.
func condHolds(s keyState, in kvInput) bool {
	switch in.Cond {
	case condModRev:
		return s.Exists && s.ModRev != 0 && s.ModRev == in.CondRev
	case condAbsent:
		return !s.Exists
	}
	return true
}

// preconditionFailed checks a 412 that reported the key's mod revision
// etag (0: absent).
func preconditionFailed(s keyState, in kvInput, holds bool, etag uint64) (bool, keyState) {
	if holds || in.Cond == condNone {
		return false, s
	}
	if !s.Exists {
		return etag == 0, s
	}
	if etag == 0 || !revMatches(s.ModRev, etag) || (in.Cond == condModRev && etag == in.CondRev) {
		return false, s
	}
	s.ModRev = etag
	return true, s
}

// revMatches compares a known revision with a reported one; an unknown one
// (0) matches any positive revision.
func revMatches(known, reported uint64) bool {
	if known == 0 {
		return reported != 0
	}
	return known == reported
}

func hashState(state any) uint64 {
	s := state.(keyState)
	h := fnv.New64a()
	h.Write([]byte(s.Value))
	var b []byte
	for _, v := range []uint64{s.ModRev, s.CreateRev, s.Version, s.Floor} {
		b = strconv.AppendUint(b, v, 10)
		b = append(b, ' ')
	}
	if s.Exists {
		b = append(b, 'e')
	}
	h.Write(b)
	return h.Sum64()
}

func describeState(s keyState) string {
	if !s.Exists {
		return fmt.Sprintf("absent (floor %d)", s.Floor)
	}
	return fmt.Sprintf("%q mod=%s create=%s ver=%d (floor %d)", s.Value, revString(s.ModRev), revString(s.CreateRev), s.Version, s.Floor)
}

func revString(rev uint64) string {
	if rev == 0 {
		return "?"
	}
	return strconv.FormatUint(rev, 10)
}

func describeInput(in kvInput) string {
	var cond string
	switch in.Cond {
	case condModRev:
		cond = fmt.Sprintf(", if mod=%d", in.CondRev)
	case condAbsent:
		cond = ", if absent"
	}
	switch in.Kind {
	case opGet:
		if in.Serializable {
			return fmt.Sprintf("get(%s, serializable)", in.Key)
		}
		return fmt.Sprintf("get(%s)", in.Key)
	case opPut:
		return fmt.Sprintf("put(%s, %q%s)", in.Key, in.Value, cond)
	default:
		return fmt.Sprintf("delete(%s%s)", in.Key, cond)
	}
}

func describeOutput(in kvInput, out kvOutput) string {
	switch out.Status {
	case stOK:
		switch in.Kind {
		case opGet:
			return fmt.Sprintf("%q mod=%d create=%d ver=%d @%d", out.Value, out.Rev, out.CreateRev, out.Version, out.StoreRev)
		case opPut:
			return fmt.Sprintf("rev %d create=%d ver=%d", out.Rev, out.CreateRev, out.Version)
		default:
			return fmt.Sprintf("rev %d", out.Rev)
		}
	case stPrecondition:
		return fmt.Sprintf("412 (mod %d)", out.Rev)
	default:
		return out.Status.String()
	}
}

func describeOperation(input, output any) string {
	in, out := input.(kvInput), output.(kvOutput)
	return describeInput(in) + " -> " + describeOutput(in, out)
}

// prepareHistory fills in ValueRev for the puts of unknown outcome: the
// revision at which any answer showed their value.
func prepareHistory(ops []porcupine.Operation) {
	seen := map[string]uint64{}
	for _, op := range ops {
		in, out := op.Input.(kvInput), op.Output.(kvOutput)
		if out.Status != stOK {
			continue
		}
		switch {
		case in.Kind == opPut:
			if _, ok := seen[in.Value]; !ok {
				seen[in.Value] = out.Rev
			}
		case in.Kind == opGet:
			if _, ok := seen[out.Value]; !ok {
				seen[out.Value] = out.Rev
			}
		}
	}
	for i, op := range ops {
		in, out := op.Input.(kvInput), op.Output.(kvOutput)
		if in.Kind == opPut && out.Status == stUnknown {
			in.ValueRev = seen[in.Value]
			ops[i].Input = in
		}
	}
}
