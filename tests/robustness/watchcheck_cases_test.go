package robustness

import (
	"slices"
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
)

// watchScenario is a small history with its watchers, which the watch check
// must accept as it is; TestWatchCheck breaks it in one way at a time.
//
//	5   put a=x                              acknowledged
//	7   txn: put a=x2, put b=y2              acknowledged
//	9   delete b                             acknowledged
//	10  put c=z                              unknown outcome, seen
//	11  txn move c to b: put b=m, delete c   unknown outcome, seen
//	    put x=w                              unknown outcome, never applied
//	12  fence: put a=f1, put f=f2            acknowledged
//
// The final listing is at revision 11. Watchers: all (prefix "key", from
// 1), a (the key a, from 1), group0 (prefix "key0.", from 8), and early
// (prefix "key", from 1, ended by a 410 at revision 8).
func watchScenario() watchCheck {
	kf := keyName(3, 0)
	move := txn(ifValue(kc, "z"), tops(tget(kc), tput(kb, "m"), tdel(kc)), tops(tget(kc)))
	fence := txn(nil, tops(tput(ka, "f1"), tput(kf, "f2")), nil)
	ops := []porcupine.Operation{
		op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
		op(1, 2, 3, txn(ifMod(ka, 5), tops(tput(ka, "x2"), tput(kb, "y2")), nil), txnDone(true, 7, rPut("x2", 7, 5, 2), rPut("y2", 7, 7, 1))),
		op(0, 4, 5, del(kb), deleted(9)),
		op(2, 6, never, put(kc, "z"), unknown),
		op(3, 7, never, move, unknown),
		op(4, 8, never, put(kx, "w"), unknown),
		op(5, 20, 21, fence, txnDone(true, 12, rPut("f1", 12, 5, 3), rPut("f2", 12, 12, 1))),
	}
	put := func(rev uint64, key, value string, create, ver uint64) watchEvent {
		return watchEvent{Key: key, Value: value, CreateRev: create, ModRev: rev, Version: ver, Rev: rev}
	}
	del := func(rev uint64, key string) watchEvent { return watchEvent{Delete: true, Key: key, Rev: rev} }
	all := []watchEvent{
		put(5, ka, "x", 5, 1),
		put(7, ka, "x2", 5, 2), put(7, kb, "y2", 7, 1),
		del(9, kb),
		put(10, kc, "z", 10, 1),
		put(11, kb, "m", 11, 1), del(11, kc),
		put(12, ka, "f1", 5, 3), put(12, kf, "f2", 12, 1),
	}
	pick := func(from uint64, keep func(string) bool) []watchEvent {
		var out []watchEvent
		for _, e := range all {
			if e.Rev >= from && keep(e.Key) {
				out = append(out, e)
			}
		}
		return out
	}
	return watchCheck{
		watches: []watchRecord{
			{Name: "all", Key: "key", Prefix: true, Start: 1, Events: slices.Clone(all)},
			{Name: "a", Key: ka, Start: 1, Events: pick(1, func(k string) bool { return k == ka })},
			{Name: "group0", Key: "key0.", Prefix: true, Start: 8, Events: pick(8, func(k string) bool { return strings.HasPrefix(k, "key0.") })},
			{Name: "early", Key: "key", Prefix: true, Start: 1, Events: slices.Clone(all[:3]), Compacted: true, End: 8},
		},
		ops: ops,
		final: map[string]keyState{
			ka: {Exists: true, Value: "x2", ModRev: 7, CreateRev: 5, Version: 2},
			kb: {Exists: true, Value: "m", ModRev: 11, CreateRev: 11, Version: 1},
		},
		finalRev: 11,
		fenceRev: 12,
	}
}

// TestWatchCheck checks that the watch check accepts what correct watchers
// receive and rejects each way of getting it wrong.
func TestWatchCheck(t *testing.T) {
	if f := checkWatches(watchScenario()); len(f) > 0 {
		t.Fatalf("the correct scenario fails: %q", f)
	}
	// events returns the events of watcher name, to change.
	events := func(wc *watchCheck, name string) *[]watchEvent {
		for i := range wc.watches {
			if wc.watches[i].Name == name {
				return &wc.watches[i].Events
			}
		}
		t.Fatalf("no watcher %s", name)
		return nil
	}
	without := func(wc *watchCheck, name string, drop func(watchEvent) bool) {
		ev := events(wc, name)
		*ev = slices.DeleteFunc(*ev, drop)
	}
	atRev := func(rev uint64) func(watchEvent) bool { return func(e watchEvent) bool { return e.Rev == rev } }
	tests := []struct {
		name   string
		mutate func(wc *watchCheck)
		want   string // the kind of failure, at least
	}{
		{"a gap", func(wc *watchCheck) { without(wc, "all", atRev(7)) }, "revision missed"},
		{"a gap in a watcher that ended with a 410, before its end", func(wc *watchCheck) { without(wc, "early", atRev(5)) }, "revision missed"},
		{"an acknowledged write no watcher received", func(wc *watchCheck) {
			for _, name := range []string{"all", "group0"} {
				without(wc, name, atRev(9))
			}
		}, "revision missed"},
		{"half of an acknowledged transaction", func(wc *watchCheck) {
			without(wc, "all", func(e watchEvent) bool { return e.Rev == 7 && e.Key == kb })
		}, "revision received in part or wrong"},
		{"a duplicate", func(wc *watchCheck) {
			ev := events(wc, "all")
			*ev = slices.Insert(*ev, 4, (*ev)[3])
		}, "events out of order or repeated"},
		{"a revision repeated after a resume", func(wc *watchCheck) {
			ev := events(wc, "group0")
			*ev = slices.Insert(*ev, 2, (*ev)[0])
		}, "events out of order or repeated"},
		{"revisions out of order", func(wc *watchCheck) {
			ev := events(wc, "all")
			(*ev)[3], (*ev)[4] = (*ev)[4], (*ev)[3]
		}, "events out of order or repeated"},
		{"a value other than the acknowledged put's", func(wc *watchCheck) { (*events(wc, "all"))[0].Value = "q" }, "event that is not the acknowledged write"},
		{"watchers that disagree on an unknown write", func(wc *watchCheck) { (*events(wc, "group0"))[1].Version = 2 }, "watchers disagree"},
		{"an event of a value nobody wrote", func(wc *watchCheck) {
			ev := events(wc, "all")
			*ev = slices.Insert(*ev, 3, watchEvent{Key: kc, Value: "nobody", CreateRev: 8, ModRev: 8, Version: 1, Rev: 8})
		}, "event of a value nobody wrote"},
		{"an event of a refused write", func(wc *watchCheck) {
			wc.ops = append(wc.ops, op(6, 9, 10, cas(kc, "r", 3), failed(0)))
			ev := events(wc, "all")
			*ev = slices.Insert(*ev, 3, watchEvent{Key: kc, Value: "r", CreateRev: 8, ModRev: 8, Version: 1, Rev: 8})
		}, "event of a write that did not happen there"},
		{"a delete no write made", func(wc *watchCheck) {
			ev := events(wc, "all")
			*ev = slices.Insert(*ev, 3, watchEvent{Delete: true, Key: kx, Rev: 8})
		}, "event no write can have made"},
		{"an unknown write applied twice", func(wc *watchCheck) {
			ev := events(wc, "all")
			*ev = append(*ev, watchEvent{Key: kc, Value: "z", CreateRev: 13, ModRev: 13, Version: 1, Rev: 13})
		}, "write applied twice"},
		{"half of a transaction of unknown outcome", func(wc *watchCheck) {
			for _, name := range []string{"all", "group0"} {
				without(wc, name, func(e watchEvent) bool { return e.Rev == 11 && e.Key == kc })
			}
		}, "replay differs from the final state"},
		{"a version that skips", func(wc *watchCheck) {
			for _, name := range []string{"all", "group0"} {
				ev := events(wc, name)
				i := slices.IndexFunc(*ev, func(e watchEvent) bool { return e.Rev == 10 })
				(*ev)[i].Version, (*ev)[i].CreateRev = 2, 5
			}
		}, "event that does not follow the key's previous one"},
		{"a final state the events do not give", func(wc *watchCheck) {
			wc.final[ka] = keyState{Exists: true, Value: "x2", ModRev: 7, CreateRev: 5, Version: 3}
		}, "replay differs from the final state"},
		{"an unknown write that every watcher missed", func(wc *watchCheck) {
			wc.final[kx] = keyState{Exists: true, Value: "w", ModRev: 8, CreateRev: 8, Version: 1}
		}, "replay differs from the final state"},
		{"a watcher that stopped before the fence", func(wc *watchCheck) { without(wc, "a", atRev(12)) }, "watcher did not reach the fence"},
		{"an event before the watch's start", func(wc *watchCheck) {
			ev := events(wc, "group0")
			*ev = slices.Insert(*ev, 0, put7(kb))
		}, "event before the watch's start"},
		{"an event outside the watched range", func(wc *watchCheck) {
			ev := events(wc, "a")
			*ev = slices.Insert(*ev, 2, put7(kb))
		}, "event outside the watched range"},
		{"two acknowledged writes at one revision", func(wc *watchCheck) {
			wc.ops = append(wc.ops, op(6, 9, 10, put(kx, "v"), wrote(9, 9, 1)))
		}, "two acknowledged writes at one revision"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wc := watchScenario()
			tt.mutate(&wc)
			failures := checkWatches(wc)
			if !slices.ContainsFunc(failures, func(f string) bool { return strings.HasPrefix(f, tt.want+": ") }) {
				t.Fatalf("want a failure %q, got %q", tt.want, failures)
			}
		})
	}
}

// put7 is the put of y2 to key at revision 7, as the acknowledged
// transaction made it for b.
func put7(key string) watchEvent {
	return watchEvent{Key: key, Value: "y2", CreateRev: 7, ModRev: 7, Version: 1, Rev: 7}
}
