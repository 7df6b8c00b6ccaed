package robustness

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
)

// The watch check: what the history's watchers received, compared with
// each other, with the writes the clients made, and with the final state.
//
// Every revision is one command, so the changes a watcher must see are
// known from two sides: an acknowledged write says its revision and what it
// wrote (a put's value and the key's new create revision and version, a
// delete, a transaction's puts and the deletes that removed a key), and
// every watcher that received a revision says what it held. A revision no
// acknowledged write names must be the work of one write of unknown
// outcome: the one that put the values its put events carry (values are
// unique), and that could delete the keys its delete events name.
//
// A watcher covers the revisions from its start (the From it asked for, or
// the revision after the one its first stream said it started after) to
// the fence, a transaction that puts every workload key once the clients
// have stopped; one that ended with a 410 (every member had compacted the
// revision it needed next) covers up to that revision, and that end is
// allowed: it is reported, and what it got before is checked. Within what
// it covers, a watcher must have received every change of its range
// exactly once, whole, in revision order and key order within a revision,
// across all of its resumes; and replaying its events must give the final
// state of its keys: each key's last event is the key as the final listing
// has it (or its absence), versions count up from creation, and a key it
// saw no event for was last written before its start.

// watchRecord is what one watcher received.
type watchRecord struct {
	Name   string `json:"name"`
	Key    string `json:"key"` // the key, or the prefix
	Prefix bool   `json:"prefix"`
	// Start is the first revision the watcher covers.
	Start  uint64       `json:"start"`
	Events []watchEvent `json:"events"`
	// Requests counts the watch requests its client sent: the first, and
	// every resume and retry, on any member.
	Requests int `json:"requests"`
	// Resumes counts the times the harness started the watch again from
	// the first revision it had not received, after the client gave up
	// resuming by itself (or could not start).
	Resumes int `json:"resumes"`
	// Compacted says the watcher ended with a 410: every member had
	// compacted End, the first revision it did not receive.
	Compacted bool   `json:"compacted,omitempty"`
	End       uint64 `json:"end,omitempty"`
	// Errors are the errors that ended its watches, the 410 included.
	Errors []string `json:"errors,omitempty"`
}

func (w *watchRecord) covers(key string) bool {
	if w.Prefix {
		return strings.HasPrefix(key, w.Key)
	}
	return key == w.Key
}

// watchEvent is one event as a watcher received it.
type watchEvent struct {
	Delete    bool   `json:"delete,omitempty"`
	Key       string `json:"key"`
	Value     string `json:"value,omitempty"`
	CreateRev uint64 `json:"create_rev,omitempty"`
	ModRev    uint64 `json:"mod_rev,omitempty"`
	Version   uint64 `json:"version,omitempty"`
	Rev       uint64 `json:"rev"`
}

func (e watchEvent) String() string {
	if e.Delete {
		return fmt.Sprintf("@%d delete %s", e.Rev, e.Key)
	}
	return fmt.Sprintf("@%d put %s=%q create=%d mod=%d ver=%d", e.Rev, e.Key, e.Value, e.CreateRev, e.ModRev, e.Version)
}

// watchCheck is what checkWatches compares.
type watchCheck struct {
	watches []watchRecord
	// ops is every operation of the history, the fence's included.
	ops []porcupine.Operation
	// final is the store at finalRev, by key (the final listing).
	final    map[string]keyState
	finalRev uint64
	// fenceRev is the acknowledged fence's revision.
	fenceRev uint64
}

// maxWatchFailures bounds the failures checkWatches reports of one kind.
const maxWatchFailures = 10

// checkWatches returns what the watchers got wrong.
func checkWatches(wc watchCheck) []string {
	c := &watchChecker{watchCheck: wc, counts: map[string]int{}}
	expected := c.acknowledgedChanges()
	ref := c.observedChanges()
	c.explain(expected, ref)
	revs := slices.Sorted(maps.Keys(ref))
	for rev := range expected {
		if _, ok := ref[rev]; !ok {
			revs = append(revs, rev)
		}
	}
	slices.Sort(revs)
	for i := range c.watches {
		w := &c.watches[i]
		c.checkCoverage(w, revs, expected, ref)
		c.checkReplay(w)
	}
	for kind, n := range c.counts {
		if n > maxWatchFailures {
			c.failures = append(c.failures, fmt.Sprintf("%s: %d more", kind, n-maxWatchFailures))
		}
	}
	return c.failures
}

type watchChecker struct {
	watchCheck
	failures []string
	counts   map[string]int // failures by kind
}

func (c *watchChecker) fail(kind, format string, args ...any) {
	c.counts[kind]++
	if c.counts[kind] <= maxWatchFailures {
		c.failures = append(c.failures, kind+": "+fmt.Sprintf(format, args...))
	}
}

// change is what one revision did, by key.
type change map[string]watchEvent

func (ch change) String() string {
	parts := make([]string, 0, len(ch))
	for _, k := range slices.Sorted(maps.Keys(ch)) {
		parts = append(parts, ch[k].String())
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// within returns the events of ch in w's range.
func (ch change) within(w *watchRecord) change {
	out := change{}
	for k, e := range ch {
		if w.covers(k) {
			out[k] = e
		}
	}
	return out
}

// acknowledgedChange is the change an acknowledged write made.
type acknowledgedChange struct {
	op porcupine.Operation
	ch change
}

// acknowledgedChanges returns, by revision, what the acknowledged writes
// did; two at one revision are a failure.
func (c *watchChecker) acknowledgedChanges() map[uint64]acknowledgedChange {
	out := map[uint64]acknowledgedChange{}
	for _, op := range c.ops {
		in, o := op.Input.(kvInput), op.Output.(kvOutput)
		if !acknowledgedWrite(in, o) {
			continue
		}
		ch := change{}
		switch in.Kind {
		case opPut:
			ch[in.Key] = watchEvent{Key: in.Key, Value: in.Value, CreateRev: o.CreateRev, ModRev: o.Rev, Version: o.Version, Rev: o.Rev}
		case opDelete:
			ch[in.Key] = watchEvent{Delete: true, Key: in.Key, Rev: o.Rev}
		case opTxn:
			for i, t := range in.Txn.branch(o.Succeeded) {
				r := o.Results[i]
				switch {
				case t.Kind == opPut:
					ch[t.Key] = watchEvent{Key: t.Key, Value: t.Value, CreateRev: r.CreateRev, ModRev: r.ModRev, Version: r.Version, Rev: o.Rev}
				case t.Kind == opDelete && r.Deleted > 0:
					ch[t.Key] = watchEvent{Delete: true, Key: t.Key, Rev: o.Rev}
				}
			}
		}
		if prev, ok := out[o.Rev]; ok {
			c.fail("two acknowledged writes at one revision", "%s and %s both at revision %d",
				describeOperation(prev.op.Input, prev.op.Output), describeOperation(in, o), o.Rev)
			continue
		}
		out[o.Rev] = acknowledgedChange{op: op, ch: ch}
	}
	return out
}

// observedChanges checks each watcher's own order and returns, by revision,
// what the watchers received together; watchers that disagree on an event
// are a failure.
func (c *watchChecker) observedChanges() map[uint64]change {
	out := map[uint64]change{}
	for i := range c.watches {
		w := &c.watches[i]
		var prev *watchEvent
		for j := range w.Events {
			e := w.Events[j]
			switch {
			case prev != nil && (e.Rev < prev.Rev || (e.Rev == prev.Rev && e.Key <= prev.Key)):
				c.fail("events out of order or repeated", "watcher %s: %v after %v", w.Name, e, *prev)
			case !w.covers(e.Key):
				c.fail("event outside the watched range", "watcher %s: %v", w.Name, e)
			case e.Rev < w.Start:
				c.fail("event before the watch's start", "watcher %s from %d: %v", w.Name, w.Start, e)
			case !e.Delete && (e.ModRev != e.Rev || e.Version == 0 || (e.Version == 1) != (e.CreateRev == e.Rev)):
				c.fail("put event with inconsistent revisions", "watcher %s: %v", w.Name, e)
			}
			prev = &w.Events[j]
			ch, ok := out[e.Rev]
			if !ok {
				ch = change{}
				out[e.Rev] = ch
			}
			if seen, ok := ch[e.Key]; ok && seen != e {
				c.fail("watchers disagree", "revision %d, key %s: %v, and %v to watcher %s", e.Rev, e.Key, seen, e, w.Name)
				continue
			}
			ch[e.Key] = e
		}
	}
	return out
}

// explain checks every revision the watchers received against the write
// that made it: the acknowledged one at that revision, or else one write of
// unknown outcome.
func (c *watchChecker) explain(expected map[uint64]acknowledgedChange, ref map[uint64]change) {
	writer := map[string]porcupine.Operation{} // put value → the operation that puts it
	for _, op := range c.ops {
		for _, w := range mayWrite(op) {
			if w.put {
				writer[w.value] = op
			}
		}
	}
	type opKey struct {
		client int
		call   int64
	}
	used := map[opKey]uint64{} // the revision each write of unknown outcome took effect at
	for _, rev := range slices.Sorted(maps.Keys(ref)) {
		got := ref[rev]
		if ack, ok := expected[rev]; ok {
			for k, e := range got {
				if want, ok := ack.ch[k]; !ok || want != e {
					c.fail("event that is not the acknowledged write", "revision %d: watchers received %v, the write acknowledged there (%s) made %v",
						rev, e, describeOperation(ack.op.Input, ack.op.Output), ack.ch)
				}
			}
			continue
		}
		var op *porcupine.Operation
		puts := false
		for _, e := range got {
			if e.Delete {
				continue
			}
			puts = true
			w, ok := writer[e.Value]
			switch {
			case !ok:
				c.fail("event of a value nobody wrote", "%v", e)
			case w.Output.(kvOutput).Status != stUnknown:
				c.fail("event of a write that did not happen there", "%v: the value of %s", e, describeOperation(w.Input, w.Output))
			case op != nil && (op.ClientId != w.ClientId || op.Call != w.Call):
				c.fail("events of two writes at one revision", "revision %d: %v", rev, got)
			default:
				op = &w
			}
		}
		if op == nil {
			if !puts && !c.someUnknownDeletes(got) {
				c.fail("event no write can have made", "revision %d: %v, and no write of unknown outcome deletes those keys", rev, got)
			}
			continue
		}
		if !writesChange(*op, got) {
			c.fail("event no write can have made", "revision %d: %v is not what %s can do", rev, got, describeInput(op.Input.(kvInput)))
		}
		k := opKey{op.ClientId, op.Call}
		if at, ok := used[k]; ok && at != rev {
			c.fail("write applied twice", "%s at revisions %d and %d", describeInput(op.Input.(kvInput)), at, rev)
		}
		used[k] = rev
	}
}

// mayWrite returns the writes op made or may have made, as writesOf, but
// also for a put or a transaction that was refused (so that an event of its
// value is found and reported).
func mayWrite(op porcupine.Operation) []keyWrite {
	in := op.Input.(kvInput)
	switch in.Kind {
	case opPut:
		return []keyWrite{{op: op, key: in.Key, put: true, value: in.Value}}
	case opTxn:
		var writes []keyWrite
		for _, t := range slices.Concat(in.Txn.Success, in.Txn.Failure) {
			if t.Kind != opGet {
				writes = append(writes, keyWrite{op: op, key: t.Key, put: t.Kind == opPut, value: t.Value})
			}
		}
		return writes
	}
	return writesOf(op)
}

// writesChange reports whether one branch of op, whose outcome is unknown,
// makes exactly ch: its puts, with their values, and deletes of the other
// keys (a delete of a missing key makes no event, so the branch may delete
// more).
func writesChange(op porcupine.Operation, ch change) bool {
	in := op.Input.(kvInput)
	if in.Kind != opTxn {
		return branchMakes([]txnOp{{Kind: in.Kind, Key: in.Key, Value: in.Value}}, ch)
	}
	return branchMakes(in.Txn.Success, ch) || branchMakes(in.Txn.Failure, ch)
}

func branchMakes(ops []txnOp, ch change) bool {
	puts := 0
	for _, t := range ops {
		if t.Kind != opPut {
			continue
		}
		if e, ok := ch[t.Key]; !ok || e.Delete || e.Value != t.Value {
			return false
		}
		puts++
	}
	for _, e := range ch {
		if !e.Delete {
			puts--
			continue
		}
		if !slices.ContainsFunc(ops, func(t txnOp) bool { return t.Kind == opDelete && t.Key == e.Key }) {
			return false
		}
	}
	return puts == 0
}

// someUnknownDeletes reports whether a write of unknown outcome can have
// made ch, a change of deletes only.
func (c *watchChecker) someUnknownDeletes(ch change) bool {
	for _, op := range c.ops {
		if op.Output.(kvOutput).Status == stUnknown && op.Input.(kvInput).Kind != opGet && writesChange(op, ch) {
			return true
		}
	}
	return false
}

// checkCoverage checks that w received every change of its range within
// what it covers, whole: what the acknowledged write made, or else what the
// watchers received together.
func (c *watchChecker) checkCoverage(w *watchRecord, revs []uint64, expected map[uint64]acknowledgedChange, ref map[uint64]change) {
	hi := c.fenceRev
	if w.Compacted {
		hi = w.End - 1
	}
	got := map[uint64]change{}
	for _, e := range w.Events {
		if got[e.Rev] == nil {
			got[e.Rev] = change{}
		}
		got[e.Rev][e.Key] = e
	}
	for _, rev := range revs {
		if rev < w.Start || rev > hi {
			continue
		}
		var want change
		if ack, ok := expected[rev]; ok {
			want = ack.ch.within(w)
		} else {
			want = ref[rev].within(w)
		}
		have := got[rev]
		if have == nil {
			have = change{}
		}
		if !maps.Equal(want, have) {
			kind := "revision missed"
			if len(have) > 0 {
				kind = "revision received in part or wrong"
			}
			c.fail(kind, "watcher %s (from %d): revision %d: received %v, want %v", w.Name, w.Start, rev, have, want)
		}
	}
	if !w.Compacted && len(got[c.fenceRev]) == 0 {
		c.fail("watcher did not reach the fence", "watcher %s: its last event is %v, the fence is at %d", w.Name, lastEvent(w), c.fenceRev)
	}
}

func lastEvent(w *watchRecord) string {
	if len(w.Events) == 0 {
		return "none"
	}
	return w.Events[len(w.Events)-1].String()
}

// checkReplay replays w's events up to the final listing's revision: each
// put must follow from the key's previous event (versions count up from 1,
// the create revision stays), and when w covers that revision, the last
// event of each key must be the key as the final listing has it.
func (c *watchChecker) checkReplay(w *watchRecord) {
	state := map[string]keyState{}
	for _, e := range w.Events {
		if e.Rev > c.finalRev {
			break
		}
		prev, known := state[e.Key]
		if !known && w.Start == 1 {
			known = true // nothing existed before revision 1
		}
		if e.Delete {
			if known && !prev.Exists {
				c.fail("delete event of a missing key", "watcher %s: %v", w.Name, e)
			}
			state[e.Key] = keyState{}
			continue
		}
		next := keyState{Exists: true, Value: e.Value, ModRev: e.ModRev, CreateRev: e.CreateRev, Version: e.Version}
		if known {
			want := putResult(prev, e.Value, e.Rev)
			if next != want {
				c.fail("event that does not follow the key's previous one", "watcher %s: %v after %s", w.Name, e, describeKey(prev))
			}
		}
		state[e.Key] = next
	}
	if w.Compacted && w.End <= c.finalRev {
		return // it did not see the end
	}
	keys := map[string]bool{}
	for k := range c.final {
		if w.covers(k) {
			keys[k] = true
		}
	}
	for k := range state {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		final := c.final[k]
		if s, ok := state[k]; ok {
			if s != final {
				c.fail("replay differs from the final state", "watcher %s: key %s is %s after its events, %s in the final listing", w.Name, k, describeKey(s), describeKey(final))
			}
			continue
		}
		if final.Exists && final.ModRev >= w.Start {
			c.fail("replay differs from the final state", "watcher %s (from %d) received no event of key %s, which the final listing has as %s", w.Name, w.Start, k, describeKey(final))
		}
	}
}

func describeKey(k keyState) string {
	if !k.Exists {
		return "absent"
	}
	return fmt.Sprintf("%q create=%d mod=%d ver=%d", k.Value, k.CreateRev, k.ModRev, k.Version)
}
