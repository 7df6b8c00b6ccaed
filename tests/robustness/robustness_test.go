//go:build unix

package robustness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/raftkv/raftkv/internal/proctest"
)

// History limits.
const (
	// minDefinite is how many operations must get a definite answer before
	// each fault and after the last one healed: a history in which the
	// cluster did nothing checks nothing, and fails.
	minDefinite = 50
	// progressTimeout bounds each of those waits.
	progressTimeout = 30 * time.Second
	// historyTimeout bounds a whole history.
	historyTimeout = 4 * time.Minute
	// defaultSeed is the short pass's first seed; ROBUSTNESS_SEED changes it.
	defaultSeed = 20260501
)

// historySpec is one history: a seed and the faults it injects. The seed
// also drives the clients' choices of operations and keys.
type historySpec struct {
	Name   string  `json:"name"`
	Seed   uint64  `json:"seed"`
	Faults []fault `json:"faults"`
}

// scheduleRand is the source of a history's fault parameters; the clients
// draw from streams 0 to workloadClients-1 of the same seed.
func scheduleRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 1<<32)) }

// historyResult is what a history did and found.
type historyResult struct {
	Spec      historySpec
	Stats     historyStats
	Records   []faultRecord
	Failures  []string
	Violation bool // porcupine found the history illegal or could not decide
	Lost      int  // acknowledged writes the final reads do not show
	Failovers []time.Duration
	CatchUps  []time.Duration
	Joins     []time.Duration
	Converge  time.Duration
	Check     time.Duration
	Took      time.Duration
	ReportDir string
	replay    string // the command that runs this history again

	Watch          watchStats
	WatchViolation bool          // the watch check failed
	watches        []watchRecord // what the watchers received, for the report

	Lock          lockStats
	LockViolation bool // the lock check failed
	locks         *lockReport
}

// runHistory runs one history: a fresh cluster, the workload, the faults one
// after the other, and then every check. Failures are reported with
// t.Errorf, and a report is written for them.
func runHistory(t *testing.T, spec historySpec, replay string) historyResult {
	h := &history{t: t, res: historyResult{Spec: spec, replay: replay}, start: time.Now(), rec: newRecorder()}
	h.logf("history %s: seed %d, faults %v; replay with: %s", spec.Name, spec.Seed, spec.Faults, replay)
	bin := serverBinary.Path(t)
	ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
	defer cancel()
	c, err := newCluster(bin, t.TempDir(), h.logf)
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	defer c.close()
	defer h.stop()
	if err := c.start(ctx); err != nil {
		h.fail("%v", err)
	} else {
		h.logf("cluster started: %s", describeMembers(c))
		ws := newWatchSet(ctx, c, h.logf)
		defer ws.halt()
		ws.start(earlyWatches()...)
		w := startWorkload(c, h.rec, spec.Seed, false)
		defer w.halt()
		ls := startLockers(c, h.rec, spec.Seed)
		defer ls.halt()
		h.drive(ctx, w, ws, ls)
		ls.stop()
		w.halt()
		ls.halt()
		h.logf("workload stopped: %d definite answers, %d unknown", w.definite.Load(), w.unknowns.Load())
		h.check(ctx, w, ws, ls)
	}
	h.stop()
	return h.finish()
}

// history is one history in progress.
type history struct {
	t       *testing.T
	res     historyResult
	start   time.Time
	c       *cluster
	rec     *recorder
	stopped bool
}

func (h *history) logf(format string, args ...any) {
	h.t.Logf("%6.2fs %s", time.Since(h.start).Seconds(), fmt.Sprintf(format, args...))
}

func (h *history) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	h.res.Failures = append(h.res.Failures, msg)
	h.logf("FAIL: %s", msg)
}

// stop stops the cluster once, and fails the history for what went wrong
// in its processes.
func (h *history) stop() {
	if h.stopped {
		return
	}
	h.stopped = true
	h.c.stop()
	for _, p := range h.c.takeProblems() {
		h.fail("%s", p)
	}
}

// drive runs the faults while the workload and the lockers run, each once
// enough operations got a definite answer and a lock hold began since the
// last fault healed, and then waits for as much again (and for
// minAcquisitions holds in all). The late watchers start before the first
// fault.
func (h *history) drive(ctx context.Context, w *workload, ws *watchSet, ls *lockSet) {
	nem := &nemesis{c: h.c, rec: h.rec, logf: h.logf, blackhole: os.Getenv("ROBUSTNESS_BLACKHOLE") == "1"}
	var mark, healed int64
	for i, f := range h.res.Spec.Faults {
		if err := w.waitDefinite(ctx, mark, minDefinite, progressTimeout); err != nil {
			h.fail("before %v: %v", f, err)
			return
		}
		if err := ls.waitHolds(ctx, healed, 1, false, progressTimeout); err != nil {
			h.fail("before %v: %v", f, err)
			return
		}
		if i == 0 {
			ws.start(lateWatches()...)
		}
		r, err := nem.inject(ctx, f)
		h.res.Records = append(h.res.Records, r)
		if err != nil {
			h.fail("%v", err)
			return
		}
		mark, healed = w.definite.Load(), r.End
	}
	if err := w.waitDefinite(ctx, mark, minDefinite, progressTimeout); err != nil {
		h.fail("after the faults healed: %v", err)
	}
	if err := ls.waitHolds(ctx, healed, 1, true, progressTimeout); err != nil {
		h.fail("after the faults healed: %v", err)
	}
}

// check runs the checks of a history whose workload and lockers have
// stopped.
func (h *history) check(ctx context.Context, w *workload, ws *watchSet, ls *lockSet) {
	for _, u := range w.unexpected() {
		h.fail("an answer the API does not allow: %s", u)
	}
	acqs, writes, lockErrs, unexpects := ls.records()
	for _, u := range unexpects {
		h.fail("lock: an answer the API does not allow: %s", u)
	}
	if n, err := releaseLeases(ctx, h.c); err != nil {
		h.fail("the lockers' leases outlived them by %v: %v", leasesGoneTimeout, err)
	} else if n > 0 {
		h.logf("revoked %d leases the lockers left", n)
	}
	took, final, cerr := converge(ctx, h.c)
	if cerr != nil {
		h.fail("%v", cerr)
	} else {
		h.res.Converge = took
		h.logf("members converged %v after the clients stopped", took.Round(time.Millisecond))
	}
	if err := finalReads(ctx, h.c, h.rec, w.keys); err != nil {
		h.fail("%v", err)
	}
	fenceOps, fenceRev, ferr := fence(ctx, h.c, h.rec, w.keys)
	if ferr == nil {
		if err := ws.waitFence(ctx, fenceRev, w.keys); err != nil {
			h.logf("%v", err) // the watch check reports what is missing
		}
	}
	ws.halt()
	h.stop()
	ops := h.rec.history()
	h.res.Stats = countOps(ops)
	var result porcupine.CheckResult
	result, h.res.Check = checkLinearizable(ops)
	st := h.res.Stats
	h.logf("porcupine: %s in %v for %d operations (%d definite, %d unknown, %d acknowledged writes, %d transactions)",
		checkResultString(result), h.res.Check.Round(time.Millisecond), st.ops, st.definite, st.unknown, st.acknowledgedWrites, st.txns)
	switch result {
	case porcupine.Illegal:
		h.res.Violation = true
		h.fail("the history is not linearizable")
	case porcupine.Unknown:
		h.res.Violation = true
		h.fail("porcupine could not decide within %v", checkTimeout)
	}
	lost := lostWrites(ops)
	h.res.Lost = len(lost)
	for _, l := range lost {
		h.fail("acknowledged write lost: %s", l)
	}
	switch {
	case ferr != nil:
		h.fail("no watch check: the fence was not acknowledged: %v", ferr)
	case cerr != nil:
		h.logf("no watch check: the members did not converge, so there is no final state")
	default:
		h.checkWatches(ws.records(), slices.Concat(ops, fenceOps), final, fenceRev)
	}
	if cerr == nil {
		h.checkLocks(lockCheck{acqs: acqs, writes: writes, final: finalState(final.kvs)}, lockErrs)
	} else {
		h.logf("no lock check: the members did not converge, so there is no final state")
	}
	for _, r := range h.res.Records {
		if r.LeaderKilled != 0 {
			d, err := failoverTime(ops, r.LeaderKilled)
			if err != nil {
				h.fail("%s: %v", r.Fault.Kind, err)
				continue
			}
			h.res.Failovers = append(h.res.Failovers, d)
			h.logf("failover after %s: first acknowledged write %v after the kill", r.Fault.Kind, d.Round(time.Millisecond))
		}
		if r.CatchUp > 0 {
			h.res.CatchUps = append(h.res.CatchUps, r.CatchUp)
		}
		if r.Joined > 0 {
			h.res.Joins = append(h.res.Joins, r.Joined)
		}
	}
}

// checkWatches checks what the watchers received.
func (h *history) checkWatches(recs []watchRecord, ops []porcupine.Operation, final listing, fenceRev uint64) {
	h.res.watches = recs
	h.res.Watch = countWatches(recs)
	failures := checkWatches(watchCheck{watches: recs, ops: ops, final: finalState(final.kvs), finalRev: final.rev, fenceRev: fenceRev})
	ws := h.res.Watch
	h.logf("watch check: %d watchers, %d events, %d watch requests, %d resumes by the harness, %d ended by a 410; fence at revision %d: %d failures",
		ws.watchers, ws.events, ws.requests, ws.resumes, ws.compacted, fenceRev, len(failures))
	var each []string
	for _, r := range recs {
		d := fmt.Sprintf("%s from %d: %d events, %d requests", r.Name, r.Start, len(r.Events), r.Requests)
		if r.Compacted {
			d += fmt.Sprintf(", ended by a 410 at %d", r.End)
		}
		each = append(each, d)
	}
	h.logf("watchers: %s", strings.Join(each, "; "))
	h.res.WatchViolation = len(failures) > 0
	for _, f := range failures {
		h.fail("watch: %s", f)
	}
}

// checkLocks checks what the lockers did against the final state.
func (h *history) checkLocks(lc lockCheck, lockErrs int) {
	h.res.locks = &lockReport{Acquisitions: lc.acqs, Writes: lc.writes, LockErrors: lockErrs}
	h.res.Lock = countLocks(lc)
	failures := checkLocks(lc)
	s := h.res.Lock
	h.logf("lock check: %d holds (%d lost their lease, %d Locks failed), %d fenced writes (%d accepted, %d refused, %d unknown, %d late), count %d, closest overlap %v: %d failures",
		s.acquisitions, s.lost, lockErrs, s.writes, s.accepted, s.refused, s.unknown, s.late, s.count, s.margin.Round(time.Millisecond), len(failures))
	h.res.LockViolation = len(failures) > 0
	for _, f := range failures {
		h.fail("lock: %s", f)
	}
}

// finish reports the history's failures, with a report, and returns its
// result.
func (h *history) finish() historyResult {
	res := &h.res
	res.Took = time.Since(h.start)
	if len(res.Failures) == 0 {
		h.logf("history %s passed in %v", res.Spec.Name, res.Took.Round(time.Millisecond))
		return *res
	}
	dir, err := writeReport(h.t.Name(), res, h.rec.history(), h.c.logPaths(), h.rec.faultAnnotations())
	res.ReportDir = dir
	if err != nil {
		h.t.Errorf("writing the report: %v", err)
	}
	h.t.Errorf("history %s (seed %d, faults %v) failed:\n  %s\nreport: %s\nreplay: %s",
		res.Spec.Name, res.Spec.Seed, res.Spec.Faults, strings.Join(res.Failures, "\n  "), dir, res.replay)
	return *res
}

func checkResultString(r porcupine.CheckResult) string {
	switch r {
	case porcupine.Ok:
		return "linearizable"
	case porcupine.Illegal:
		return "NOT linearizable"
	default:
		return "undecided"
	}
}

func describeMembers(c *cluster) string {
	var parts []string
	for _, n := range c.members() {
		parts = append(parts, fmt.Sprintf("%s pid %d client %s peer %s -> %s", n.name(), n.proc.Pid(), n.clientURL(), n.peerURL, n.peerAddr))
	}
	return strings.Join(parts, "; ")
}

// baseSeed is ROBUSTNESS_SEED, or def.
func baseSeed(t *testing.T, def uint64) uint64 {
	v := os.Getenv("ROBUSTNESS_SEED")
	if v == "" {
		return def
	}
	seed, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("ROBUSTNESS_SEED=%q: %v", v, err)
	}
	return seed
}

// shortPass is the histories of `make test`: every fault kind alone, then
// combinations, then one random schedule. Parameters come from each
// history's seed; a few are fixed so that the pass covers both variants
// (snapshot catch-up, learner promotion, replacing the leader).
func shortPass(seed uint64) []historySpec {
	type force func(f []fault)
	schedules := []struct {
		kinds []faultKind
		force force
	}{
		{kinds: []faultKind{killRandom}},
		{kinds: []faultKind{killLeader}},
		{kinds: []faultKind{killAll}},
		{kinds: []faultKind{stopLeader}},
		{kinds: []faultKind{isolateFollower}, force: func(f []fault) { f[0].Snapshot = true }},
		{kinds: []faultKind{isolateLeader}, force: func(f []fault) { f[0].Snapshot = true }},
		{kinds: []faultKind{delayNet}, force: func(f []fault) { f[0].AllNodes = false }},
		{kinds: []faultKind{transferLeader}},
		{kinds: []faultKind{replaceMember}, force: func(f []fault) { f[0].Leader, f[0].Learner = false, false }},
		{kinds: []faultKind{replaceMember}, force: func(f []fault) { f[0].Leader, f[0].Learner = true, true }},
		{kinds: []faultKind{isolateFollower, killLeader}, force: func(f []fault) { f[0].Snapshot = false }},
		{kinds: []faultKind{delayNet, transferLeader}, force: func(f []fault) { f[0].AllNodes = true }},
		{kinds: []faultKind{stopLeader, killRandom}},
		{kinds: []faultKind{isolateLeader, killAll}, force: func(f []fault) { f[0].Snapshot = false }},
		{kinds: []faultKind{transferLeader, replaceMember, killRandom}},
		{}, // a random schedule
	}
	specs := make([]historySpec, len(schedules))
	for i, s := range schedules {
		hs := seed + uint64(i)
		rng := scheduleRand(hs)
		var faults []fault
		if len(s.kinds) == 0 {
			faults = randomSchedule(rng)
		}
		for _, k := range s.kinds {
			faults = append(faults, newFault(rng, k))
		}
		if s.force != nil {
			s.force(faults)
		}
		var names []string
		for _, f := range faults {
			names = append(names, string(f.Kind))
		}
		name := strings.Join(names, "+")
		if len(s.kinds) == 0 {
			name = "random"
		}
		specs[i] = historySpec{Name: fmt.Sprintf("h%02d-%s", i, name), Seed: hs, Faults: faults}
	}
	return specs
}

// TestRobustness is the short pass: sixteen histories of a few seconds each,
// covering every fault kind, each with its own seed (printed in the log).
// Run one again with go test -race -run 'TestRobustness/<name>'.
func TestRobustness(t *testing.T) {
	if testing.Short() {
		t.Skip("starts clusters of raftkv processes")
	}
	seed := baseSeed(t, defaultSeed)
	start := time.Now()
	var sum soakSummary
	for _, spec := range shortPass(seed) {
		t.Run(spec.Name, func(t *testing.T) {
			replay := fmt.Sprintf("ROBUSTNESS_SEED=%d go test -race -run 'TestRobustness/%s$' ./tests/robustness", seed, spec.Name)
			sum.add(runHistory(t, spec, replay))
		})
	}
	t.Logf("short pass: %v\n%s", time.Since(start).Round(time.Second), sum.table())
}

// TestReplay runs the random schedule of one seed, as TestSoak draws it:
// ROBUSTNESS_REPLAY=<seed> go test -run TestReplay ./tests/robustness.
func TestReplay(t *testing.T) {
	v := os.Getenv("ROBUSTNESS_REPLAY")
	if v == "" {
		t.Skip("set ROBUSTNESS_REPLAY to a seed that TestSoak printed")
	}
	seed, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("ROBUSTNESS_REPLAY=%q: %v", v, err)
	}
	spec := historySpec{Name: "replay", Seed: seed, Faults: randomSchedule(scheduleRand(seed))}
	runHistory(t, spec, fmt.Sprintf("ROBUSTNESS_REPLAY=%d go test -run TestReplay ./tests/robustness", seed))
}

// TestSoak runs random schedules until ROBUSTNESS_SOAK (a duration) is up,
// and prints a summary. make soak DURATION=30m runs it.
func TestSoak(t *testing.T) {
	v := os.Getenv("ROBUSTNESS_SOAK")
	if v == "" {
		t.Skip("set ROBUSTNESS_SOAK to a duration (make soak DURATION=30m)")
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("ROBUSTNESS_SOAK=%q: %v", v, err)
	}
	seed := baseSeed(t, uint64(time.Now().UnixNano()))
	t.Logf("soak for %v from seed %d (race detector: %v)", d, seed, proctest.RaceEnabled)
	deadline := time.Now().Add(d)
	var sum soakSummary
	for i := 0; time.Now().Before(deadline); i++ {
		hs := seed + uint64(i)
		spec := historySpec{Name: fmt.Sprintf("soak%04d", i), Seed: hs, Faults: randomSchedule(scheduleRand(hs))}
		t.Run(spec.Name, func(t *testing.T) {
			sum.add(runHistory(t, spec, fmt.Sprintf("ROBUSTNESS_REPLAY=%d go test -run TestReplay ./tests/robustness", hs)))
		})
	}
	t.Logf("soak summary (%v from seed %d):\n%s", d, seed, sum.table())
	if os.Getenv("ROBUSTNESS_REPORT_DIR") != "" {
		dir, err := reportRoot()
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "soak-summary.txt"), []byte(sum.table()), 0o644)
		}
		if err != nil {
			t.Errorf("write the summary: %v", err)
		}
	}
}
