//go:build unix

package robustness

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// Self-check limits.
const (
	// staleReads is how many reads the isolated node must serve once it
	// fell behind before the isolation ends.
	staleReads = 5
	// stallLag is how far the others must be ahead of the isolated node,
	// in applied entries, for it to count as behind.
	stallLag = 100
)

// TestCheckerCatchesStaleReads checks the checker. It runs the workload of
// the robustness histories, but with every read asking for
// consistency=serializable, and isolates a follower while the others keep
// writing. The isolated follower still receives the leader's appends until
// raft has as many in flight to it as it allows (raftnode's
// MaxInflightAppends; its answers are cut), then nothing but heartbeats, whose commit index does not move past
// what it acknowledged last: it stops applying, and serves reads from that
// old state. Porcupine must find the history not linearizable.
func TestCheckerCatchesStaleReads(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of raftkv processes")
	}
	seed := baseSeed(t, defaultSeed) + 1000
	ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
	defer cancel()
	c, logf := startTestCluster(ctx, t)
	rec := newRecorder()
	w := startWorkload(c, rec, seed, true)
	defer w.halt()
	if err := w.waitDefinite(ctx, 0, minDefinite, progressTimeout); err != nil {
		t.Fatal(err)
	}
	nem := &nemesis{c: c, rec: rec, logf: logf}
	_, others, err := nem.roles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	victim := others[0]
	px := victim.proxy
	px.PauseTx()
	px.PauseRx()
	isolated := time.Now()
	logf("isolated %s", victim.name())

	var last isolationSample
	var stalledAt time.Duration
	err = poll(ctx, isolationTimeout, func() error {
		s, err := nem.sampleIsolation(ctx, victim, isolated)
		if err != nil {
			return err
		}
		if s.applied != last.applied {
			stalledAt = s.at
		}
		last = s
		if s.at-stalledAt < 500*time.Millisecond || s.othersApplied < s.applied+stallLag {
			return fmt.Errorf("%s has not fallen behind: %v", victim.name(), s)
		}
		return nil
	})
	if err != nil {
		px.UnpauseTx()
		px.UnpauseRx()
		t.Fatal(err)
	}
	behindSince := rec.now()
	logf("%s stopped applying: %v", victim.name(), last)
	var served int
	err = poll(ctx, isolationTimeout, func() error {
		served = 0
		for _, op := range rec.history() {
			m, _ := op.Metadata.(opMeta)
			if m.Node == victim.name() && op.Input.(kvInput).Kind == opGet && op.Call >= behindSince {
				served++
			}
		}
		if served < staleReads {
			return fmt.Errorf("%s served %d reads since it fell behind, want %d", victim.name(), served, staleReads)
		}
		return nil
	})
	end, _ := nem.sampleIsolation(ctx, victim, isolated)
	px.UnpauseTx()
	px.UnpauseRx()
	rec.annotate(int64(isolated.Sub(rec.base)), rec.now(), "isolate "+victim.name(), end.String())
	if err != nil {
		t.Fatal(err)
	}
	w.halt()
	logf("healed: %v; %s served %d serializable reads while behind", end, victim.name(), served)

	ops := rec.history()
	res, took := checkLinearizable(ops)
	stats := countOps(ops)
	logf("porcupine: %s in %v for %d operations (%d unknown)", checkResultString(res), took.Round(time.Millisecond), stats.ops, stats.unknown)
	if res == porcupine.Illegal {
		return
	}
	c.stop()
	hr := historyResult{
		Spec:     historySpec{Name: "stale-reads", Seed: seed},
		Stats:    stats,
		Failures: []string{"porcupine did not find stale serializable reads: " + checkResultString(res)},
		replay:   fmt.Sprintf("ROBUSTNESS_SEED=%d go test -race -run TestCheckerCatchesStaleReads ./tests/robustness", seed-1000),
	}
	dir, rerr := writeReport(t.Name(), &hr, ops, c.logPaths(), rec.faultAnnotations())
	t.Errorf("porcupine says %s for a history in which %s served %d serializable reads while %d entries behind; report: %s",
		checkResultString(res), victim.name(), served, end.othersApplied-end.applied, dir)
	if rerr != nil {
		t.Errorf("writing the report: %v", rerr)
	}
}
