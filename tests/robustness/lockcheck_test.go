package robustness

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The lock check: lockers take one client.Mutex in turn and increment a
// counter stored in raftkv, fenced by the Mutex's token (its key's create
// revision), while the faults run. A holder first claims the counter, with
// a transaction that writes its token unless a higher one is there and reads
// the count; it then increments it, each time with a transaction that
// writes only if the token is still its own. So once a higher token claimed
// the counter, no lower one writes it again, and an increment is accepted
// only if nobody claimed between the holder's claim and it: the count it
// writes is the one it read plus what it wrote since. Every accepted write
// also creates a key of its own, named by its token or its count, so the
// final listing holds the whole sequence of accepted writes with their
// revisions, and the check is exact:
//
//   - acquisitions: no two got the same token; one that began after another
//     returned got a higher token; and no holder returned from Lock while the
//     key of a lower token was still there, as its holder read it before
//     letting go, or while the holder of a lower token still saw its session
//     alive (beyond overlapSlack): a holder's session reports the lease lost
//     no later than the cluster can expire it, and the lock passes on only
//     once it has;
//   - the fenced resource, in revision order: claims with growing tokens,
//     each increment by the token of the claim before it, counting 1, 2, …
//     up to the final count, each key written once;
//   - every accepted write was sent (by a holder of its token, with its
//     count), acknowledged as accepted at that revision or of unknown
//     outcome; every write acknowledged as accepted is there; a refused
//     write is not, and was refused by a higher token that claimed;
//   - a claim read the count the increments before it made;
//   - no lock key outlived the lockers (each is attached to its session's
//     lease), and enough happened for the check to mean something.

// Keys of the lock check. Tokens and counts are zero-padded to 20 digits,
// so that the byte order of values is the order of the numbers.
const (
	// lockName is the Mutex's name: its keys are lockName/<lease id>.
	lockName = "locks/counter"
	// fenceToken holds the token of the holder that claimed the counter
	// last.
	fenceToken = "fence/token"
	// fenceCount is the counter.
	fenceCount = "fence/count"
	// fenceClaimPrefix + token is the ID of the write that claimed the
	// counter with that token.
	fenceClaimPrefix = "fence/claim/"
	// fenceIncPrefix + count is "<token> <ID>" of the increment to count.
	fenceIncPrefix = "fence/inc/"
	fencePrefix    = "fence/"
)

// Lock-check limits.
const (
	// overlapSlack is how long a holder may still see its session alive
	// after a higher token took the lock: the time its session's timer
	// takes to fire and the holder's goroutine to run on a loaded machine.
	overlapSlack = 200 * time.Millisecond
	// minAcquisitions is how many holds a history must have, with at
	// least one accepted increment: a history in which nobody took the
	// lock checks nothing.
	minAcquisitions = 3
)

func padded(n uint64) string { return fmt.Sprintf("%020d", n) }

// writeKind is the kind of a fenced write.
type writeKind string

const (
	writeClaim     writeKind = "claim"     // the token, unless a higher one is there; read the count
	writeIncrement writeKind = "increment" // the count + 1, if the token is still the writer's
)

// writeOutcome is what the cluster said of a fenced write.
type writeOutcome string

const (
	writeAccepted writeOutcome = "accepted" // the compare let it write
	writeRefused  writeOutcome = "refused"  // a higher token claimed the counter first
	writeUnknown  writeOutcome = "unknown"  // it may or may not have been applied
)

// lockAcquisition is one hold of the lock: a Lock that returned, until
// Unlock was called or the holder saw its session lost.
type lockAcquisition struct {
	Locker int    `json:"locker"`
	Lease  uint64 `json:"lease"`
	Token  uint64 `json:"token"`
	Call   int64  `json:"call_ns"`   // Lock was called
	Return int64  `json:"return_ns"` // Lock returned
	End    int64  `json:"end_ns"`    // the hold ended
	// Lost says the holder found its session's lease lost during the hold.
	Lost bool `json:"lost,omitempty"`
	// Alive are the times at which the holder found its session alive and
	// acted as the holder: before each write, and before Unlock.
	Alive []int64 `json:"alive_ns"`
	// KeyHeld is when the holder, after its last look at its session,
	// sent a linearizable read that found its lock key still there (0 if
	// it did not): until then nobody else can have got the lock.
	KeyHeld int64 `json:"key_held_ns,omitempty"`
	// Unlock is the error of Unlock, if it failed.
	Unlock string `json:"unlock_error,omitempty"`
}

// fencedWrite is one fenced transaction a locker sent and that may have
// been applied (one that certainly was not is left out).
type fencedWrite struct {
	Locker int       `json:"locker"`
	ID     string    `json:"id"` // unique in the history
	Kind   writeKind `json:"kind"`
	Token  uint64    `json:"token"`
	// Count is, for an increment, the count it writes; for an accepted
	// claim, the count it read.
	Count uint64 `json:"count"`
	// Late says it was sent after its hold ended, once its locker held
	// the lock again, as the request of a holder that lost the lock might
	// arrive.
	Late    bool         `json:"late,omitempty"`
	Call    int64        `json:"call_ns"`
	Return  int64        `json:"return_ns"` // math.MaxInt64 when unknown
	Outcome writeOutcome `json:"outcome"`
	Rev     uint64       `json:"revision,omitempty"` // accepted: the transaction's revision
	Seen    uint64       `json:"seen_token,omitempty"`
	Err     string       `json:"error,omitempty"`
}

func (w fencedWrite) String() string {
	s := fmt.Sprintf("%s %s by locker %d with token %d", w.Kind, w.ID, w.Locker, w.Token)
	if w.Kind == writeIncrement {
		s += fmt.Sprintf(" to %d", w.Count)
	}
	if w.Late {
		s += " (late)"
	}
	switch w.Outcome {
	case writeAccepted:
		s += fmt.Sprintf(": accepted at %d", w.Rev)
		if w.Kind == writeClaim {
			s += fmt.Sprintf(", read count %d", w.Count)
		}
	case writeRefused:
		s += fmt.Sprintf(": refused, token %d there", w.Seen)
	default:
		s += ": " + string(w.Outcome)
	}
	return s
}

// incValue is what an accepted increment leaves in its key; a claim leaves
// its ID.
func incValue(token uint64, id string) string { return padded(token) + " " + id }

// lockCheck is what checkLocks compares.
type lockCheck struct {
	acqs   []lockAcquisition
	writes []fencedWrite
	// final is the store once the lockers stopped and their leases were
	// gone, by key (the final listing).
	final map[string]keyState
}

// acceptedWrite is a write the final listing shows.
type acceptedWrite struct {
	kind  writeKind
	token uint64
	count uint64 // an increment's
	id    string
	rev   uint64
}

func (a acceptedWrite) String() string {
	if a.kind == writeClaim {
		return fmt.Sprintf("claim %s with token %d at %d", a.id, a.token, a.rev)
	}
	return fmt.Sprintf("increment %s to %d with token %d at %d", a.id, a.count, a.token, a.rev)
}

type lockChecker struct {
	lockCheck
	failures []string
	counts   map[string]int // failures by kind
}

// checkLocks returns what the lock and the fenced counter got wrong.
func checkLocks(lc lockCheck) []string {
	c := &lockChecker{lockCheck: lc, counts: map[string]int{}}
	c.checkAcquisitions()
	accepted := c.acceptedWrites()
	c.checkSequence(accepted)
	c.checkWrites(accepted)
	c.checkProgress()
	for kind, n := range c.counts {
		if n > maxWatchFailures {
			c.failures = append(c.failures, fmt.Sprintf("%s: %d more", kind, n-maxWatchFailures))
		}
	}
	return c.failures
}

func (c *lockChecker) fail(kind, format string, args ...any) {
	c.counts[kind]++
	if c.counts[kind] <= maxWatchFailures {
		c.failures = append(c.failures, kind+": "+fmt.Sprintf(format, args...))
	}
}

func at(ns int64) string { return fmt.Sprintf("%.3fs", time.Duration(ns).Seconds()) }

// checkAcquisitions checks the tokens the lock handed out against each
// other and against when the holders saw their sessions alive.
func (c *lockChecker) checkAcquisitions() {
	byToken := map[uint64]lockAcquisition{}
	for _, a := range c.acqs {
		if b, ok := byToken[a.Token]; ok {
			c.fail("two holds with one token", "token %d to locker %d (Lock returned at %s) and to locker %d (at %s)",
				a.Token, b.Locker, at(b.Return), a.Locker, at(a.Return))
		}
		byToken[a.Token] = a
	}
	for _, a := range c.acqs {
		for _, b := range c.acqs {
			if a.Return < b.Call && a.Token >= b.Token {
				c.fail("a token that did not grow", "locker %d got token %d at %s, locker %d then asked at %s and got token %d",
					a.Locker, a.Token, at(a.Return), b.Locker, at(b.Call), b.Token)
			}
			if a.Token >= b.Token {
				continue
			}
			// b's Lock returned, so a's key was gone: a had unlocked, or
			// its lease had ended, which its session reports by then.
			if a.KeyHeld > b.Return {
				c.fail("holders overlapped", "locker %d got token %d at %s, while the key of locker %d's token %d was still there after %s",
					b.Locker, b.Token, at(b.Return), a.Locker, a.Token, at(a.KeyHeld))
			} else if alive := lastAlive(a, b.Return+int64(overlapSlack)); alive >= 0 {
				c.fail("holders overlapped", "locker %d got token %d at %s, while locker %d, holding token %d, saw its session alive at %s",
					b.Locker, b.Token, at(b.Return), a.Locker, a.Token, at(alive))
			}
		}
	}
}

// lastAlive returns the last time after t at which a's holder saw its
// session alive, or -1.
func lastAlive(a lockAcquisition, t int64) int64 {
	last := int64(-1)
	for _, x := range a.Alive {
		if x > t {
			last = max(last, x)
		}
	}
	return last
}

// overlapMargin is, over all pairs of holds, how long after a higher token
// returned from Lock a holder of a lower one still saw its session alive:
// at most overlapSlack in a history that passes. Zero when never.
func overlapMargin(acqs []lockAcquisition) time.Duration {
	var m int64
	for _, a := range acqs {
		for _, b := range acqs {
			if a.Token < b.Token {
				if alive := lastAlive(a, b.Return); alive >= 0 {
					m = max(m, alive-b.Return)
				}
			}
		}
	}
	return time.Duration(m)
}

// acceptedWrites reads the accepted writes from the final listing, in
// revision order, and checks that each key was written once and holds what
// the writes put there.
func (c *lockChecker) acceptedWrites() []acceptedWrite {
	var out []acceptedWrite
	for _, key := range slices.Sorted(maps.Keys(c.final)) {
		k := c.final[key]
		switch {
		case strings.HasPrefix(key, lockName+"/"):
			c.fail("a lock key outlived the lockers", "%s is %s", key, describeKey(k))
			continue
		case !strings.HasPrefix(key, fencePrefix) || key == fenceToken || key == fenceCount:
			continue
		}
		if k.Version != 1 {
			c.fail("a fenced key written twice", "%s is %s", key, describeKey(k))
		}
		a := acceptedWrite{rev: k.ModRev}
		var err error
		if s, ok := strings.CutPrefix(key, fenceClaimPrefix); ok {
			a.kind, a.id = writeClaim, k.Value
			a.token, err = strconv.ParseUint(s, 10, 64)
		} else if s, ok := strings.CutPrefix(key, fenceIncPrefix); ok {
			a.kind = writeIncrement
			a.count, err = strconv.ParseUint(s, 10, 64)
			if tok, id, found := strings.Cut(k.Value, " "); !found {
				err = fmt.Errorf("value %q is not a token and an ID", k.Value)
			} else {
				a.id = id
				a.token, err = strconv.ParseUint(tok, 10, 64)
			}
		} else {
			err = fmt.Errorf("no such key in the lock check")
		}
		if err != nil {
			c.fail("a fenced key nobody writes", "%s is %s: %v", key, describeKey(k), err)
			continue
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b acceptedWrite) int { return cmp.Compare(a.rev, b.rev) })
	return out
}

// checkSequence checks the accepted writes in revision order: growing
// claims, each increment by the token of the last claim, counting up by one
// from 1; and the final token and count.
func (c *lockChecker) checkSequence(accepted []acceptedWrite) {
	var token, count uint64
	var claim *acceptedWrite
	for i := range accepted {
		a := accepted[i]
		if i > 0 && a.rev == accepted[i-1].rev {
			c.fail("two fenced writes at one revision", "%v and %v", accepted[i-1], a)
		}
		switch a.kind {
		case writeClaim:
			if claim != nil && a.token <= token {
				c.fail("a lower token accepted after a higher one", "%v after %v", a, *claim)
			}
			token, claim = max(token, a.token), &accepted[i]
		case writeIncrement:
			switch {
			case claim == nil:
				c.fail("an increment before any claim", "%v", a)
			case a.token != token:
				c.fail("an increment by a token other than the last claim's", "%v after %v", a, *claim)
			}
			if a.count != count+1 {
				c.fail("increments that do not count up by one", "%v after the count was %d", a, count)
			}
			count = max(count, a.count)
		}
	}
	want := keyState{}
	if count > 0 {
		want = keyState{Exists: true, Value: padded(count)}
	}
	if got := c.final[fenceCount]; got.Exists != want.Exists || got.Value != want.Value {
		c.fail("a final count other than the increments'", "%s is %s, the increments count to %d", fenceCount, describeKey(got), count)
	}
	want = keyState{}
	if token > 0 {
		want = keyState{Exists: true, Value: padded(token)}
	}
	if got := c.final[fenceToken]; got.Exists != want.Exists || got.Value != want.Value {
		c.fail("a final token other than the last claim's", "%s is %s, the last claim's token is %d", fenceToken, describeKey(got), token)
	}
}

// checkWrites matches the accepted writes with the writes the lockers sent,
// and checks what the refused ones and the claims read.
func (c *lockChecker) checkWrites(accepted []acceptedWrite) {
	sent := map[string]fencedWrite{}
	for _, w := range c.writes {
		sent[w.ID] = w
	}
	shown := map[string]acceptedWrite{}
	claimed := map[uint64]bool{}
	for _, a := range accepted {
		shown[a.id] = a
		if a.kind == writeClaim {
			claimed[a.token] = true
		}
		w, ok := sent[a.id]
		switch {
		case !ok:
			c.fail("a write nobody sent", "%v", a)
		case w.Kind != a.kind || w.Token != a.token || (a.kind == writeIncrement && w.Count != a.count):
			c.fail("a write other than the one sent", "%v, sent as %v", a, w)
		case w.Outcome == writeRefused:
			c.fail("a refused write took effect", "%v, answered as %v", a, w)
		case w.Outcome == writeAccepted && w.Rev != a.rev:
			c.fail("a write at another revision than acknowledged", "%v, answered as %v", a, w)
		}
	}
	for _, w := range c.writes {
		switch w.Outcome {
		case writeAccepted:
			if _, ok := shown[w.ID]; !ok {
				c.fail("an acknowledged write lost", "%v", w)
			}
			if w.Kind == writeClaim {
				before := uint64(0)
				for _, a := range accepted {
					if a.kind == writeIncrement && a.rev < w.Rev {
						before++
					}
				}
				if w.Count != before {
					c.fail("a claim read a count other than the increments' before it", "%v; %d increments were accepted before it", w, before)
				}
			}
		case writeRefused:
			if w.Seen <= w.Token || !claimed[w.Seen] {
				c.fail("a write refused without a higher claim", "%v", w)
			}
		}
	}
}

// checkProgress fails a history in which the lockers did too little for
// the check to mean anything.
func (c *lockChecker) checkProgress() {
	incs := 0
	for _, w := range c.writes {
		if w.Kind == writeIncrement && w.Outcome == writeAccepted {
			incs++
		}
	}
	if len(c.acqs) < minAcquisitions || incs == 0 {
		c.fail("no progress", "%d holds (want %d) and %d acknowledged increments (want 1)", len(c.acqs), minAcquisitions, incs)
	}
}

// lockStats counts what a history's lockers did.
type lockStats struct {
	acquisitions, lost                 int
	writes, accepted, refused, unknown int
	late, count                        int
	margin                             time.Duration
}

func countLocks(lc lockCheck) lockStats {
	s := lockStats{acquisitions: len(lc.acqs), margin: overlapMargin(lc.acqs)}
	for _, a := range lc.acqs {
		if a.Lost {
			s.lost++
		}
	}
	for _, w := range lc.writes {
		s.writes++
		switch w.Outcome {
		case writeAccepted:
			s.accepted++
		case writeRefused:
			s.refused++
		default:
			s.unknown++
		}
		if w.Late {
			s.late++
		}
	}
	if v, err := strconv.Atoi(lc.final[fenceCount].Value); err == nil {
		s.count = v
	}
	return s
}
