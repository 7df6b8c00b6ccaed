//go:build unix

package robustness

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// soakSummary adds up histories for the table TestSoak and TestRobustness
// print.
type soakSummary struct {
	histories, failed int
	ops, definite     int
	unknown, acked    int
	txns              int
	violations, lost  int
	watch             watchStats
	watchViolations   int
	lock              lockStats
	lockViolations    int
	faults            map[faultKind]int
	failovers         []time.Duration
	catchUps          []time.Duration
	joins             []time.Duration
	converge          []time.Duration
	checks            []time.Duration
	reports           []string
}

func (s *soakSummary) add(r historyResult) {
	if s.faults == nil {
		s.faults = map[faultKind]int{}
	}
	s.histories++
	if len(r.Failures) > 0 {
		s.failed++
	}
	if r.ReportDir != "" {
		s.reports = append(s.reports, r.ReportDir)
	}
	s.ops += r.Stats.ops
	s.definite += r.Stats.definite
	s.unknown += r.Stats.unknown
	s.acked += r.Stats.acknowledgedWrites
	s.txns += r.Stats.txns
	if r.Violation {
		s.violations++
	}
	s.lost += r.Lost
	s.watch.watchers += r.Watch.watchers
	s.watch.events += r.Watch.events
	s.watch.requests += r.Watch.requests
	s.watch.resumes += r.Watch.resumes
	s.watch.compacted += r.Watch.compacted
	if r.WatchViolation {
		s.watchViolations++
	}
	s.lock.acquisitions += r.Lock.acquisitions
	s.lock.lost += r.Lock.lost
	s.lock.writes += r.Lock.writes
	s.lock.accepted += r.Lock.accepted
	s.lock.refused += r.Lock.refused
	s.lock.unknown += r.Lock.unknown
	s.lock.late += r.Lock.late
	s.lock.margin = max(s.lock.margin, r.Lock.margin)
	if r.LockViolation {
		s.lockViolations++
	}
	for _, rec := range r.Records {
		s.faults[rec.Fault.Kind]++
	}
	s.failovers = append(s.failovers, r.Failovers...)
	s.catchUps = append(s.catchUps, r.CatchUps...)
	s.joins = append(s.joins, r.Joins...)
	if r.Converge > 0 {
		s.converge = append(s.converge, r.Converge)
	}
	if r.Check > 0 {
		s.checks = append(s.checks, r.Check)
	}
}

// table formats the summary.
func (s *soakSummary) table() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "histories checked\t%d (%d failed)\n", s.histories, s.failed)
	fmt.Fprintf(w, "operations\t%d (%d definite, %d unknown outcome, %d acknowledged writes, %d transactions)\n", s.ops, s.definite, s.unknown, s.acked, s.txns)
	for _, k := range faultKinds {
		fmt.Fprintf(w, "faults: %s\t%d\n", k, s.faults[k])
	}
	fmt.Fprintf(w, "linearizability violations\t%d\n", s.violations)
	fmt.Fprintf(w, "acknowledged writes lost\t%d\n", s.lost)
	fmt.Fprintf(w, "watchers\t%d (%d events, %d watch requests, %d resumes by the harness, %d ended by a 410)\n", s.watch.watchers, s.watch.events, s.watch.requests, s.watch.resumes, s.watch.compacted)
	fmt.Fprintf(w, "histories whose watchers failed the watch check\t%d\n", s.watchViolations)
	fmt.Fprintf(w, "lock holds\t%d (%d lost their lease; fenced writes: %d accepted, %d refused, %d unknown, %d late; closest overlap %v)\n",
		s.lock.acquisitions, s.lock.lost, s.lock.accepted, s.lock.refused, s.lock.unknown, s.lock.late, s.lock.margin.Round(time.Millisecond))
	fmt.Fprintf(w, "histories that failed the lock check\t%d\n", s.lockViolations)
	fmt.Fprintf(w, "failover (leader killed → first acknowledged write)\t%s\n", percentiles(s.failovers))
	fmt.Fprintf(w, "snapshot catch-up (heal → snapshot received)\t%s\n", percentiles(s.catchUps))
	fmt.Fprintf(w, "new member catch-up (start → applied as the others)\t%s\n", percentiles(s.joins))
	fmt.Fprintf(w, "convergence (clients stopped → members agree)\t%s\n", percentiles(s.converge))
	fmt.Fprintf(w, "porcupine check time\t%s\n", percentiles(s.checks))
	for _, r := range s.reports {
		fmt.Fprintf(w, "report\t%s\n", r)
	}
	_ = w.Flush()
	return b.String()
}

// percentiles formats the count, p50, p99 and maximum of ds.
func percentiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "n=0"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.5) - 1
		return s[min(max(i, 0), len(s)-1)].Round(time.Millisecond)
	}
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", len(s), at(0.50), at(0.99), s[len(s)-1].Round(time.Millisecond))
}
