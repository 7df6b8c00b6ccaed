package robustness

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/anishathalye/porcupine"

	"github.com/raftkv/raftkv/wire"
)

// The model is a porcupine.Model of one group of keys, partitioned by group.
// The workload's keys come in fixed groups (keyGroups groups of groupSize
// keys, named key<group>.<slot>), and every operation touches the keys of
// one group only: a get, put or delete one key, a transaction (POST
// /v1/txn) several keys of its group. Operations on different groups touch
// disjoint state, so a history is linearizable if and only if the history
// of each group is (linearizability is local).
//
// Besides values and existence it checks what the API says about revisions,
// which are raft log indexes (docs/API.md):
//
//   - a write's revision is above every revision that an operation
//     linearized before it reported in the group (its group's earlier
//     writes, and the store revisions its group's earlier reads were served
//     at): the floor;
//   - a read's store revision is at least the floor, and at least the mod
//     revision it read;
//   - a put reports the key's new mod revision, create revision and version
//     (1 on creation, +1 on every later put), and whether it created the
//     key; reads report the same three numbers;
//   - a failed condition (412) reports the key's current mod revision;
//   - a transaction's compares are evaluated on the state it is linearized
//     in, and its answer must name the branch they choose; the branch's
//     operations run in order, each seeing the writes before it; each get
//     reports what the key held at that point, each put the key's new
//     state, each delete whether the key existed; every write of the
//     branch is at the transaction's one revision; a transaction that
//     wrote nothing (a failed compare before a read-only branch, or only
//     deletes of missing keys) reports the store revision it was served at,
//     as a read does.
//
// The floor is one for the whole group, not one per key: revisions are one
// counter for the whole store. All of this holds in the linearization that
// orders writes by revision and puts each read right after the write its
// store revision names, which respects real time whenever raftkv keeps its
// promises; so it never rejects a correct history, and it catches lost,
// duplicated, reordered and half-applied writes that values alone would not
// show.
//
// An operation whose outcome is unknown (a 504, a broken connection, a
// client timeout) has output status unknown and the return time
// math.MaxInt64: porcupine may linearize it anywhere after its call,
// including after every other operation, where it changes nothing that was
// observed. The step function therefore applies it as if it succeeded; "it
// never happened" is the linearization that puts it last.

// The workload's keys: keyGroups groups of groupSize keys. A transaction
// touches the keys of one group; the workload's take three (groupSize must
// be at least 3).
const (
	keyGroups = 4
	groupSize = 3
)

// keyName is the key in slot of group.
func keyName(group, slot int) string { return groupPrefix(group) + strconv.Itoa(slot) }

// groupPrefix is the prefix of the keys of group, and of no other key.
func groupPrefix(group int) string { return "key" + strconv.Itoa(group) + "." }

// keyPos is the group of key and its slot in the group; ok is false for a
// key keyName does not make.
func keyPos(key string) (group, slot int, ok bool) {
	rest, ok := strings.CutPrefix(key, "key")
	if !ok {
		return 0, 0, false
	}
	gs, ss, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, 0, false
	}
	group, gerr := strconv.Atoi(gs)
	slot, serr := strconv.Atoi(ss)
	if gerr != nil || serr != nil || group < 0 || group >= keyGroups || slot < 0 || slot >= groupSize {
		return 0, 0, false
	}
	return group, slot, true
}

// mustPos is keyPos for a key the harness made; any other is a bug in the
// harness.
func mustPos(key string) (group, slot int) {
	group, slot, ok := keyPos(key)
	if !ok {
		panic(fmt.Sprintf("robustness: %q is not a workload key", key))
	}
	return group, slot
}

// opKind is what an operation does.
type opKind uint8

const (
	opGet opKind = iota
	opPut
	opDelete
	opTxn
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
	return []byte([...]string{"get", "put", "delete", "txn"}[k]), nil
}

// MarshalText names the conditions in history.json.
func (c condKind) MarshalText() ([]byte, error) {
	return []byte([...]string{"none", "mod_revision", "absent"}[c]), nil
}

// kvInput is an operation's request.
type kvInput struct {
	Kind    opKind   `json:"kind"`
	Key     string   `json:"key,omitempty"`
	Value   string   `json:"value,omitempty"`
	Cond    condKind `json:"cond,omitempty"`
	CondRev uint64   `json:"cond_rev,omitempty"`
	// Serializable marks a read served from the node's local state.
	Serializable bool `json:"serializable,omitempty"`
	// Txn is a transaction's request (Kind opTxn, whose Key is empty).
	Txn *txnInput `json:"txn,omitempty"`
	// ValueRev is, for a put of unknown outcome, the revision at which
	// another operation saw its value, and for a transaction of unknown
	// outcome, the revision at which another operation saw a value that its
	// success branch puts (0 when none did). Values are unique, so if the
	// put (the success branch) happened, that was its revision. Set by
	// prepareHistory.
	ValueRev uint64 `json:"value_rev,omitempty"`
}

// group is the key group the operation touches.
func (in kvInput) group() int {
	if in.Kind != opTxn {
		g, _ := mustPos(in.Key)
		return g
	}
	group := -1
	for _, key := range in.Txn.keys() {
		g, _ := mustPos(key)
		if group >= 0 && g != group {
			panic(fmt.Sprintf("robustness: a transaction touches keys of groups %d and %d", group, g))
		}
		group = g
	}
	if group < 0 {
		panic("robustness: a transaction without keys")
	}
	return group
}

// readOnly reports whether the operation can change nothing: a failed
// read is then simply left out of the history.
func (in kvInput) readOnly() bool {
	return in.Kind == opGet || (in.Kind == opTxn && in.Txn.readOnly())
}

// txnInput is a transaction: when every compare holds, Success runs, else
// Failure.
type txnInput struct {
	Compare []txnCompare `json:"compare,omitempty"`
	Success []txnOp      `json:"success,omitempty"`
	Failure []txnOp      `json:"failure,omitempty"`
}

// txnCompare compares Key's Target (wire.TargetValue, TargetVersion or
// TargetModRevision) with Value or Number, with Op (=, !=, <, >). The
// model compares a mod revision it does not know only with = and !=; see
// holds.
type txnCompare struct {
	Key    string `json:"key"`
	Target string `json:"target"`
	Op     string `json:"op"`
	Value  string `json:"value,omitempty"`
	Number uint64 `json:"number"`
}

// txnOp is one operation of a branch: a get, a put or a delete of Key.
type txnOp struct {
	Kind  opKind `json:"kind"`
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

func (t *txnInput) branch(succeeded bool) []txnOp {
	if succeeded {
		return t.Success
	}
	return t.Failure
}

// keys returns every key the transaction names, compares first.
func (t *txnInput) keys() []string {
	var keys []string
	for _, c := range t.Compare {
		keys = append(keys, c.Key)
	}
	for _, op := range slices.Concat(t.Success, t.Failure) {
		keys = append(keys, op.Key)
	}
	return keys
}

func (t *txnInput) readOnly() bool {
	for _, op := range slices.Concat(t.Success, t.Failure) {
		if op.Kind != opGet {
			return false
		}
	}
	return true
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
	// Rev is a write's revision, a read's mod revision, for a 412 the key's
	// current mod revision (0 when it does not exist), and a transaction's
	// revision (its own when it wrote, else the store revision it was
	// served at).
	Rev       uint64 `json:"rev,omitempty"`
	ModRev    uint64 `json:"mod_rev,omitempty"` // a put's reported mod revision
	CreateRev uint64 `json:"create_rev,omitempty"`
	Version   uint64 `json:"version,omitempty"`
	Created   bool   `json:"created,omitempty"`
	Deleted   int64  `json:"deleted,omitempty"`
	// StoreRev is the store revision a get was served at.
	StoreRev uint64 `json:"store_rev,omitempty"`
	// Succeeded says which branch of a transaction ran; Results are its
	// operations' results, in order.
	Succeeded bool        `json:"succeeded,omitempty"`
	Results   []txnResult `json:"results,omitempty"`
}

// txnResult is the result of one operation of a transaction: what a get
// found, the key as a put left it, or how many keys a delete removed.
type txnResult struct {
	Found     bool   `json:"found,omitempty"`
	Value     string `json:"value,omitempty"`
	ModRev    uint64 `json:"mod_rev,omitempty"`
	CreateRev uint64 `json:"create_rev,omitempty"`
	Version   uint64 `json:"version,omitempty"`
	Created   bool   `json:"created,omitempty"`
	Deleted   int    `json:"deleted,omitempty"`
}

// keyState is the model's state of one key. A zero ModRev or CreateRev
// while the key exists means "not known": the write that set it had an
// unknown outcome and nobody saw its revision; the first answer that shows
// it fixes it. A missing key is the zero keyState.
type keyState struct {
	Exists    bool
	Value     string
	ModRev    uint64
	CreateRev uint64
	Version   uint64
}

// groupState is the model's state of one group: its keys by slot, and the
// floor, the largest revision reported by an operation linearized so far;
// every later write must be above it, every later read at or above.
type groupState struct {
	Keys  [groupSize]keyState
	Floor uint64
}

// kvModel is the partitioned model.
var kvModel = porcupine.Model{
	Partition:      partitionByGroup,
	PartitionEvent: partitionEventsByGroup,
	Init:           func() any { return groupState{} },
	Step: func(state, input, output any) (bool, any) {
		return step(state.(groupState), input.(kvInput), output.(kvOutput))
	},
	Hash:                      hashState,
	DescribeOperation:         describeOperation,
	DescribeState:             func(s any) string { return describeState(s.(groupState)) },
	DescribeOperationMetadata: func(m any) string { return fmt.Sprint(m) },
}

func partitionByGroup(history []porcupine.Operation) [][]porcupine.Operation {
	byGroup := map[int][]porcupine.Operation{}
	var groups []int
	for _, op := range history {
		g := op.Input.(kvInput).group()
		if _, ok := byGroup[g]; !ok {
			groups = append(groups, g)
		}
		byGroup[g] = append(byGroup[g], op)
	}
	out := make([][]porcupine.Operation, 0, len(groups))
	for _, g := range groups {
		out = append(out, byGroup[g])
	}
	return out
}

func partitionEventsByGroup(history []porcupine.Event) [][]porcupine.Event {
	groupOf := map[int]int{} // call event id → group
	byGroup := map[int][]porcupine.Event{}
	var groups []int
	for _, e := range history {
		if e.Kind == porcupine.CallEvent {
			groupOf[e.Id] = e.Value.(kvInput).group()
		}
		g := groupOf[e.Id]
		if _, ok := byGroup[g]; !ok {
			groups = append(groups, g)
		}
		byGroup[g] = append(byGroup[g], e)
	}
	out := make([][]porcupine.Event, 0, len(groups))
	for _, g := range groups {
		out = append(out, byGroup[g])
	}
	return out
}

// step is the sequential specification of one group.
func step(s groupState, in kvInput, out kvOutput) (bool, groupState) {
	if in.Kind == opTxn {
		return stepTxn(s, in, out)
	}
	_, slot := mustPos(in.Key)
	k := s.Keys[slot]
	var ok bool
	switch in.Kind {
	case opGet:
		ok, k, s.Floor = stepGet(k, s.Floor, out)
	case opPut:
		ok, k, s.Floor = stepPut(k, s.Floor, in, out)
	case opDelete:
		ok, k, s.Floor = stepDelete(k, s.Floor, in, out)
	}
	s.Keys[slot] = k
	return ok, s
}

// The steps of single-key operations take the key's state and the group's
// floor, and return whether the operation can take place and both after it.

func stepGet(k keyState, floor uint64, out kvOutput) (bool, keyState, uint64) {
	switch out.Status {
	case stNotFound:
		return !k.Exists, k, floor
	case stOK:
		if !k.Exists || out.Value != k.Value || out.Version != k.Version ||
			!revMatches(k.ModRev, out.Rev) || !revMatches(k.CreateRev, out.CreateRev) ||
			out.StoreRev < out.Rev || out.StoreRev < floor {
			return false, k, floor
		}
		k.ModRev, k.CreateRev = out.Rev, out.CreateRev
		return true, k, out.StoreRev
	case stUnknown: // a read changes nothing; the harness leaves these out anyway
		return true, k, floor
	}
	return false, k, floor
}

func stepPut(k keyState, floor uint64, in kvInput, out kvOutput) (bool, keyState, uint64) {
	holds := condHolds(k, in)
	switch out.Status {
	case stPrecondition:
		ok, k := preconditionFailed(k, in, holds, out.Rev)
		return ok, k, floor
	case stOK:
		if !holds || out.Rev <= floor || out.ModRev != out.Rev || out.Created == k.Exists {
			return false, k, floor
		}
		next := putResult(k, in.Value, out.Rev)
		if out.Version != next.Version || !revMatches(next.CreateRev, out.CreateRev) {
			return false, k, floor
		}
		next.CreateRev = out.CreateRev
		return true, next, out.Rev
	case stUnknown:
		if !holds {
			return true, k, floor
		}
		if in.ValueRev != 0 && in.ValueRev <= floor {
			return false, k, floor
		}
		return true, putResult(k, in.Value, in.ValueRev), max(floor, in.ValueRev)
	}
	return false, k, floor
}

// putResult is the key after a put of value at revision rev (0: unknown).
func putResult(k keyState, value string, rev uint64) keyState {
	next := keyState{Exists: true, Value: value, ModRev: rev, CreateRev: rev, Version: 1}
	if k.Exists {
		next.CreateRev, next.Version = k.CreateRev, k.Version+1
	}
	return next
}

func stepDelete(k keyState, floor uint64, in kvInput, out kvOutput) (bool, keyState, uint64) {
	holds := condHolds(k, in)
	switch out.Status {
	case stNotFound: // only an unconditional delete of a missing key
		return in.Cond == condNone && !k.Exists, k, floor
	case stPrecondition:
		ok, k := preconditionFailed(k, in, holds, out.Rev)
		return ok, k, floor
	case stOK:
		if !holds || !k.Exists || out.Rev <= floor || out.Deleted != 1 {
			return false, k, floor
		}
		return true, keyState{}, out.Rev
	case stUnknown:
		if !holds || !k.Exists {
			return true, k, floor
		}
		return true, keyState{}, floor
	}
	return false, k, floor
}

// condHolds evaluates a write's precondition. A known revision is compared;
// an unknown one never equals the condition: the harness takes its
// conditions only from revisions it saw together with a value. Values are
// unique and a command writes a key at most once, so if the unseen revision
// were that one, the write of unknown outcome that set it would be the
// write of the value seen with it, and its revision would be known
// (ValueRev).
func condHolds(k keyState, in kvInput) bool {
	switch in.Cond {
	case condModRev:
		return k.Exists && k.ModRev != 0 && k.ModRev == in.CondRev
	case condAbsent:
		return !k.Exists
	}
	return true
}

// preconditionFailed checks a 412 that reported the key's mod revision
// etag (0: absent).
func preconditionFailed(k keyState, in kvInput, holds bool, etag uint64) (bool, keyState) {
	if holds || in.Cond == condNone {
		return false, k
	}
	if !k.Exists {
		return etag == 0, k
	}
	if etag == 0 || !revMatches(k.ModRev, etag) || (in.Cond == condModRev && etag == in.CondRev) {
		return false, k
	}
	k.ModRev = etag
	return true, k
}

// revMatches compares a known revision with a reported one; an unknown one
// (0) matches any positive revision.
func revMatches(known, reported uint64) bool {
	if known == 0 {
		return reported != 0
	}
	return known == reported
}

// holds evaluates a compare on the key's state, as the server does: a
// missing key has version and mod revision 0 and no value, so a compare on
// its value is false whatever the operator. A mod revision nobody saw never
// equals a compared one (see condHolds); an order against it cannot be
// decided, and the workload never asks for one.
func (c txnCompare) holds(k keyState) bool {
	switch c.Target {
	case wire.TargetValue:
		return k.Exists && opHolds(c.Op, strings.Compare(k.Value, c.Value))
	case wire.TargetVersion:
		return opHolds(c.Op, cmp.Compare(k.Version, c.Number))
	case wire.TargetModRevision:
		if k.Exists && k.ModRev == 0 {
			switch c.Op {
			case "=":
				return false
			case "!=":
				return true
			}
			panic(fmt.Sprintf("robustness: compare %s %s %d on a mod revision nobody saw", c.Key, c.Op, c.Number))
		}
		return opHolds(c.Op, cmp.Compare(k.ModRev, c.Number))
	}
	panic(fmt.Sprintf("robustness: compare target %q", c.Target))
}

// opHolds reports whether a comparison that came out as order (-1, 0, 1)
// satisfies op.
func opHolds(op string, order int) bool {
	switch op {
	case "=":
		return order == 0
	case "!=":
		return order != 0
	case "<":
		return order < 0
	case ">":
		return order > 0
	}
	panic(fmt.Sprintf("robustness: compare operator %q", op))
}

// holds reports whether every compare of t holds in s.
func (t *txnInput) holds(s groupState) bool {
	for _, c := range t.Compare {
		_, slot := mustPos(c.Key)
		if !c.holds(s.Keys[slot]) {
			return false
		}
	}
	return true
}

// stepTxn is the sequential specification of a transaction.
func stepTxn(s groupState, in kvInput, out kvOutput) (bool, groupState) {
	t := in.Txn
	succeeded := t.holds(s)
	ops := t.branch(succeeded)
	switch out.Status {
	case stOK:
		if out.Succeeded != succeeded || len(out.Results) != len(ops) {
			return false, s
		}
		next, wrote := s, false
		for i, op := range ops {
			r := out.Results[i]
			_, slot := mustPos(op.Key)
			k := next.Keys[slot]
			switch op.Kind {
			case opGet:
				if !r.Found {
					if k.Exists {
						return false, s
					}
					continue
				}
				if !k.Exists || r.Value != k.Value || r.Version != k.Version || r.ModRev > out.Rev ||
					!revMatches(k.ModRev, r.ModRev) || !revMatches(k.CreateRev, r.CreateRev) {
					return false, s
				}
				k.ModRev, k.CreateRev = r.ModRev, r.CreateRev
			case opPut:
				nk := putResult(k, op.Value, out.Rev)
				if r.Value != op.Value || r.ModRev != out.Rev || r.Created == k.Exists ||
					r.Version != nk.Version || !revMatches(nk.CreateRev, r.CreateRev) {
					return false, s
				}
				nk.CreateRev = r.CreateRev
				k, wrote = nk, true
			case opDelete:
				if (r.Deleted == 1) != k.Exists || r.Deleted > 1 {
					return false, s
				}
				if k.Exists {
					k, wrote = keyState{}, true
				}
			}
			next.Keys[slot] = k
		}
		if out.Rev < s.Floor || (wrote && out.Rev == s.Floor) {
			return false, s
		}
		next.Floor = out.Rev
		return true, next
	case stUnknown:
		var rev uint64 // the branch's revision, when a value it put was seen
		if succeeded {
			rev = in.ValueRev
		}
		next, wrote := s, false
		for _, op := range ops {
			_, slot := mustPos(op.Key)
			k := next.Keys[slot]
			switch {
			case op.Kind == opPut:
				k, wrote = putResult(k, op.Value, rev), true
			case op.Kind == opDelete && k.Exists:
				k, wrote = keyState{}, true
			}
			next.Keys[slot] = k
		}
		if wrote && rev != 0 {
			if rev <= s.Floor {
				return false, s
			}
			next.Floor = rev
		}
		return true, next
	}
	return false, s
}

func hashState(state any) uint64 {
	s := state.(groupState)
	h := fnv.New64a()
	var b []byte
	for _, k := range s.Keys {
		b = append(b, k.Value...)
		b = append(b, 0)
		for _, v := range []uint64{k.ModRev, k.CreateRev, k.Version} {
			b = strconv.AppendUint(b, v, 10)
			b = append(b, ' ')
		}
		if k.Exists {
			b = append(b, 'e')
		}
	}
	b = strconv.AppendUint(b, s.Floor, 10)
	h.Write(b)
	return h.Sum64()
}

func describeState(s groupState) string {
	parts := make([]string, 0, len(s.Keys)+1)
	for slot, k := range s.Keys {
		if !k.Exists {
			parts = append(parts, fmt.Sprintf(".%d absent", slot))
			continue
		}
		parts = append(parts, fmt.Sprintf(".%d %q mod=%s create=%s ver=%d", slot, k.Value, revString(k.ModRev), revString(k.CreateRev), k.Version))
	}
	return strings.Join(parts, "; ") + fmt.Sprintf(" (floor %d)", s.Floor)
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
	case opDelete:
		return fmt.Sprintf("delete(%s%s)", in.Key, cond)
	}
	return in.Txn.String()
}

func (t *txnInput) String() string {
	var b strings.Builder
	b.WriteString("txn(")
	if len(t.Compare) > 0 {
		var cs []string
		for _, c := range t.Compare {
			operand := strconv.FormatUint(c.Number, 10)
			if c.Target == wire.TargetValue {
				operand = strconv.Quote(c.Value)
			}
			cs = append(cs, fmt.Sprintf("%s(%s) %s %s", c.Target, c.Key, c.Op, operand))
		}
		fmt.Fprintf(&b, "if %s then ", strings.Join(cs, " && "))
	}
	b.WriteString(describeTxnOps(t.Success))
	if len(t.Failure) > 0 {
		b.WriteString(" else " + describeTxnOps(t.Failure))
	}
	b.WriteString(")")
	return b.String()
}

func describeTxnOps(ops []txnOp) string {
	parts := make([]string, len(ops))
	for i, op := range ops {
		switch op.Kind {
		case opGet:
			parts[i] = fmt.Sprintf("get(%s)", op.Key)
		case opPut:
			parts[i] = fmt.Sprintf("put(%s, %q)", op.Key, op.Value)
		default:
			parts[i] = fmt.Sprintf("delete(%s)", op.Key)
		}
	}
	return strings.Join(parts, ", ")
}

func describeOutput(in kvInput, out kvOutput) string {
	switch out.Status {
	case stOK:
		switch in.Kind {
		case opGet:
			return fmt.Sprintf("%q mod=%d create=%d ver=%d @%d", out.Value, out.Rev, out.CreateRev, out.Version, out.StoreRev)
		case opPut:
			return fmt.Sprintf("rev %d create=%d ver=%d", out.Rev, out.CreateRev, out.Version)
		case opDelete:
			return fmt.Sprintf("rev %d", out.Rev)
		}
		return describeTxnOutput(in.Txn, out)
	case stPrecondition:
		return fmt.Sprintf("412 (mod %d)", out.Rev)
	default:
		return out.Status.String()
	}
}

func describeTxnOutput(t *txnInput, out kvOutput) string {
	branch := "failure"
	if out.Succeeded {
		branch = "success"
	}
	ops := t.branch(out.Succeeded)
	parts := make([]string, len(out.Results))
	for i, r := range out.Results {
		kind := opGet
		if i < len(ops) {
			kind = ops[i].Kind
		}
		switch {
		case kind == opGet && !r.Found:
			parts[i] = "absent"
		case kind == opGet:
			parts[i] = fmt.Sprintf("%q mod=%d create=%d ver=%d", r.Value, r.ModRev, r.CreateRev, r.Version)
		case kind == opPut:
			parts[i] = fmt.Sprintf("mod=%d create=%d ver=%d", r.ModRev, r.CreateRev, r.Version)
		default:
			parts[i] = fmt.Sprintf("deleted %d", r.Deleted)
		}
	}
	return fmt.Sprintf("%s @%d [%s]", branch, out.Rev, strings.Join(parts, "; "))
}

func describeOperation(input, output any) string {
	in, out := input.(kvInput), output.(kvOutput)
	return describeInput(in) + " -> " + describeOutput(in, out)
}

// prepareHistory fills in ValueRev for the puts and transactions of unknown
// outcome: the revision at which any answer showed a value they put (for a
// transaction, one its success branch puts).
func prepareHistory(ops []porcupine.Operation) {
	seen := map[string]uint64{}
	see := func(value string, rev uint64) {
		if _, ok := seen[value]; !ok {
			seen[value] = rev
		}
	}
	for _, op := range ops {
		in, out := op.Input.(kvInput), op.Output.(kvOutput)
		if out.Status != stOK {
			continue
		}
		switch in.Kind {
		case opPut:
			see(in.Value, out.Rev)
		case opGet:
			see(out.Value, out.Rev)
		case opTxn:
			branch := in.Txn.branch(out.Succeeded)
			for i, r := range out.Results {
				if i < len(branch) && (branch[i].Kind == opPut || r.Found) {
					see(r.Value, r.ModRev)
				}
			}
		}
	}
	for i, op := range ops {
		in, out := op.Input.(kvInput), op.Output.(kvOutput)
		if out.Status != stUnknown {
			continue
		}
		switch in.Kind {
		case opPut:
			in.ValueRev = seen[in.Value]
		case opTxn:
			in.ValueRev = 0
			for _, p := range in.Txn.Success {
				if rev, ok := seen[p.Value]; p.Kind == opPut && ok {
					in.ValueRev = rev
					break
				}
			}
		}
		ops[i].Input = in
	}
}
