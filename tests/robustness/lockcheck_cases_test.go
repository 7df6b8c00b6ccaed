package robustness

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// tick is the time unit of the lock check's scenario.
func tick(n int64) int64 { return n * int64(100*time.Millisecond) }

// lockScenario is a small history of three lockers that the lock check must
// accept as it is; TestLockCheck breaks it in one way at a time.
//
//	locker 0, token 10, holds 1–16, sees its key at 15:
//	    claim l0.1 at 12 (count 0), increments l0.2 to 1 at 13 and l0.3 to 2 at 14;
//	    in its next hold, a late increment l0.4 to 3, refused (token 11 there)
//	locker 1, token 11, asks at 5, holds 20–26, does not see its key at the end:
//	    claim l1.1 at 21 (count 2), increment l1.2 to 3 at 22,
//	    l1.3 to 4 of unknown outcome, applied at 23
//	locker 2, token 30, holds 31–36, sees its key at 35:
//	    claim l2.1 at 32 (count 4), increment l2.2 to 5 of unknown outcome, never applied
//
// Times are in ticks of 100 ms; revisions are the numbers after "at"; the
// final listing is the fenced keys those writes leave.
func lockScenario() lockCheck {
	acqs := []lockAcquisition{
		{Locker: 0, Lease: 1, Token: 10, Call: tick(0), Return: tick(1), End: tick(16), Alive: []int64{tick(2), tick(4), tick(6), tick(14)}, KeyHeld: tick(15)},
		{Locker: 1, Lease: 2, Token: 11, Call: tick(5), Return: tick(20), End: tick(26), Alive: []int64{tick(20), tick(22), tick(24), tick(25)}},
		{Locker: 2, Lease: 3, Token: 30, Call: tick(30), Return: tick(31), End: tick(36), Alive: []int64{tick(31), tick(33), tick(35)}, KeyHeld: tick(35)},
	}
	writes := []fencedWrite{
		{Locker: 0, ID: "l0.1", Kind: writeClaim, Token: 10, Count: 0, Call: tick(2), Return: tick(3), Outcome: writeAccepted, Rev: 12},
		{Locker: 0, ID: "l0.2", Kind: writeIncrement, Token: 10, Count: 1, Call: tick(4), Return: tick(5), Outcome: writeAccepted, Rev: 13},
		{Locker: 0, ID: "l0.3", Kind: writeIncrement, Token: 10, Count: 2, Call: tick(6), Return: tick(7), Outcome: writeAccepted, Rev: 14},
		{Locker: 1, ID: "l1.1", Kind: writeClaim, Token: 11, Count: 2, Call: tick(20), Return: tick(21), Outcome: writeAccepted, Rev: 21},
		{Locker: 1, ID: "l1.2", Kind: writeIncrement, Token: 11, Count: 3, Call: tick(22), Return: tick(23), Outcome: writeAccepted, Rev: 22},
		{Locker: 0, ID: "l0.4", Kind: writeIncrement, Token: 10, Count: 3, Late: true, Call: tick(22), Return: tick(24), Outcome: writeRefused, Seen: 11},
		{Locker: 1, ID: "l1.3", Kind: writeIncrement, Token: 11, Count: 4, Call: tick(24), Return: math.MaxInt64, Outcome: writeUnknown},
		{Locker: 2, ID: "l2.1", Kind: writeClaim, Token: 30, Count: 4, Call: tick(31), Return: tick(32), Outcome: writeAccepted, Rev: 32},
		{Locker: 2, ID: "l2.2", Kind: writeIncrement, Token: 30, Count: 5, Call: tick(33), Return: math.MaxInt64, Outcome: writeUnknown},
	}
	final := map[string]keyState{
		keyName(0, 0): {Exists: true, Value: "workload", ModRev: 3, CreateRev: 3, Version: 1},
		fenceToken:    {Exists: true, Value: padded(30), ModRev: 32, CreateRev: 12, Version: 3},
		fenceCount:    {Exists: true, Value: padded(4), ModRev: 23, CreateRev: 13, Version: 4},
	}
	for _, c := range []struct {
		token uint64
		id    string
		rev   uint64
	}{{10, "l0.1", 12}, {11, "l1.1", 21}, {30, "l2.1", 32}} {
		final[fenceClaimPrefix+padded(c.token)] = keyState{Exists: true, Value: c.id, ModRev: c.rev, CreateRev: c.rev, Version: 1}
	}
	for _, i := range []struct {
		count, token uint64
		id           string
		rev          uint64
	}{{1, 10, "l0.2", 13}, {2, 10, "l0.3", 14}, {3, 11, "l1.2", 22}, {4, 11, "l1.3", 23}} {
		final[fenceIncPrefix+padded(i.count)] = keyState{Exists: true, Value: incValue(i.token, i.id), ModRev: i.rev, CreateRev: i.rev, Version: 1}
	}
	return lockCheck{acqs: acqs, writes: writes, final: final}
}

// TestLockCheck checks that the lock check accepts what a correct lock and
// fence produce and rejects each way of getting it wrong.
func TestLockCheck(t *testing.T) {
	if f := checkLocks(lockScenario()); len(f) > 0 {
		t.Fatalf("the correct scenario fails: %q", f)
	}
	write := func(lc *lockCheck, id string) *fencedWrite {
		i := slices.IndexFunc(lc.writes, func(w fencedWrite) bool { return w.ID == id })
		if i < 0 {
			t.Fatalf("no write %s", id)
		}
		return &lc.writes[i]
	}
	inc := func(count uint64) string { return fenceIncPrefix + padded(count) }
	setKey := func(lc *lockCheck, key string, change func(k *keyState)) {
		k := lc.final[key]
		change(&k)
		lc.final[key] = k
	}
	tests := []struct {
		name   string
		mutate func(lc *lockCheck)
		want   string // the kind of failure, at least
	}{
		{"a holder that saw its session alive just after the next returned, within the slack", func(lc *lockCheck) {
			lc.acqs[0].Alive = append(lc.acqs[0].Alive, lc.acqs[1].Return+tick(1))
		}, ""},
		{"two holds with one token", func(lc *lockCheck) {
			lc.acqs = append(lc.acqs, lockAcquisition{Locker: 2, Token: 11, Call: tick(40), Return: tick(41), End: tick(42)})
		}, "two holds with one token"},
		{"a token lower than one handed out before the Lock began", func(lc *lockCheck) {
			lc.acqs[2].Token = 9
		}, "a token that did not grow"},
		{"a Lock that returned while the key of the holder before was still there", func(lc *lockCheck) {
			lc.acqs[1].Return = lc.acqs[0].KeyHeld - 1
		}, "holders overlapped"},
		{"a Lock that returned while the holder before still saw its session alive", func(lc *lockCheck) {
			lc.acqs[0].KeyHeld = 0
			lc.acqs[1].Return = tick(11)
		}, "holders overlapped"},
		{"a holder that missed the loss of its lease", func(lc *lockCheck) {
			lc.acqs[0].Alive = append(lc.acqs[0].Alive, lc.acqs[1].Return+tick(3))
		}, "holders overlapped"},
		{"a lower token accepted after a higher one", func(lc *lockCheck) {
			lc.writes = append(lc.writes, fencedWrite{Locker: 0, ID: "l0.9", Kind: writeClaim, Token: 5, Call: tick(30), Return: math.MaxInt64, Outcome: writeUnknown})
			lc.final[fenceClaimPrefix+padded(5)] = keyState{Exists: true, Value: "l0.9", ModRev: 24, CreateRev: 24, Version: 1}
		}, "a lower token accepted after a higher one"},
		{"an increment by a holder that was fenced off", func(lc *lockCheck) {
			write(lc, "l0.4").Outcome, write(lc, "l0.4").Rev = writeAccepted, 22
			write(lc, "l1.2").Outcome, write(lc, "l1.2").Seen, write(lc, "l1.2").Rev = writeRefused, 10, 0
			lc.final[inc(3)] = keyState{Exists: true, Value: incValue(10, "l0.4"), ModRev: 22, CreateRev: 22, Version: 1}
		}, "an increment by a token other than the last claim's"},
		{"an increment before any claim", func(lc *lockCheck) {
			write(lc, "l0.1").Rev = 15
			setKey(lc, fenceClaimPrefix+padded(10), func(k *keyState) { k.ModRev, k.CreateRev = 15, 15 })
		}, "an increment before any claim"},
		{"an acknowledged increment lost", func(lc *lockCheck) {
			delete(lc.final, inc(3))
		}, "an acknowledged write lost"},
		{"two holders that both wrote one count", func(lc *lockCheck) {
			l04 := write(lc, "l0.4")
			l04.Outcome, l04.Rev, l04.Seen = writeAccepted, 24, 0
			lc.final[inc(3)] = keyState{Exists: true, Value: incValue(10, "l0.4"), ModRev: 24, CreateRev: 22, Version: 2}
		}, "a fenced key written twice"},
		{"an increment counted twice", func(lc *lockCheck) {
			lc.final[inc(4)] = keyState{Exists: true, Value: incValue(11, "l1.2"), ModRev: 23, CreateRev: 23, Version: 1}
		}, "a write other than the one sent"},
		{"a refused write that took effect", func(lc *lockCheck) {
			lc.final[inc(5)] = keyState{Exists: true, Value: incValue(30, "l2.2"), ModRev: 33, CreateRev: 33, Version: 1}
			setKey(lc, fenceCount, func(k *keyState) { k.Value = padded(5) })
			write(lc, "l2.2").Outcome, write(lc, "l2.2").Seen = writeRefused, 31
		}, "a refused write took effect"},
		{"a write nobody sent", func(lc *lockCheck) {
			lc.final[inc(5)] = keyState{Exists: true, Value: incValue(30, "l9.9"), ModRev: 33, CreateRev: 33, Version: 1}
			setKey(lc, fenceCount, func(k *keyState) { k.Value = padded(5) })
		}, "a write nobody sent"},
		{"a write at another revision than acknowledged", func(lc *lockCheck) {
			write(lc, "l1.2").Rev = 25
		}, "a write at another revision than acknowledged"},
		{"two fenced writes at one revision", func(lc *lockCheck) {
			write(lc, "l0.3").Rev = 13
			setKey(lc, inc(2), func(k *keyState) { k.ModRev, k.CreateRev = 13, 13 })
		}, "two fenced writes at one revision"},
		{"a claim that read a stale count", func(lc *lockCheck) {
			write(lc, "l1.1").Count = 1
		}, "a claim read a count other than the increments' before it"},
		{"a write refused by its own token", func(lc *lockCheck) {
			write(lc, "l0.4").Seen = 10
		}, "a write refused without a higher claim"},
		{"a write refused by a token nobody claimed", func(lc *lockCheck) {
			write(lc, "l0.4").Seen = 12
		}, "a write refused without a higher claim"},
		{"a final count the increments do not give", func(lc *lockCheck) {
			setKey(lc, fenceCount, func(k *keyState) { k.Value = padded(5) })
		}, "a final count other than the increments'"},
		{"a final token the claims do not give", func(lc *lockCheck) {
			setKey(lc, fenceToken, func(k *keyState) { k.Value = padded(11) })
		}, "a final token other than the last claim's"},
		{"a lock key that outlived its lease", func(lc *lockCheck) {
			lc.final[lockName+"/0000000000000003"] = keyState{Exists: true, ModRev: 31, CreateRev: 30, Version: 1}
		}, "a lock key outlived the lockers"},
		{"too few holds", func(lc *lockCheck) {
			lc.acqs = lc.acqs[:2]
		}, "no progress"},
		{"no acknowledged increment", func(lc *lockCheck) {
			for i := range lc.writes {
				if lc.writes[i].Kind == writeIncrement && lc.writes[i].Outcome == writeAccepted {
					lc.writes[i].Outcome, lc.writes[i].Return, lc.writes[i].Rev = writeUnknown, math.MaxInt64, 0
				}
			}
		}, "no progress"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lc := lockScenario()
			tt.mutate(&lc)
			failures := checkLocks(lc)
			if tt.want == "" {
				if len(failures) > 0 {
					t.Fatalf("want no failure, got %q", failures)
				}
				return
			}
			if !slices.ContainsFunc(failures, func(f string) bool { return strings.HasPrefix(f, tt.want+": ") }) {
				t.Fatalf("want a failure %q, got %q", tt.want, failures)
			}
		})
	}
}
