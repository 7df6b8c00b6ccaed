package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// memorySeed seeds the memory mode's keys and values, the same for every
// cluster, as the matrix's cells are.
const memorySeed = 1

// memorySettings are the memory mode's: Clients closed-loop workers put
// values of ValueSize bytes on keys drawn uniformly from Keyspace for
// Duration, on a fresh cluster of each system in each of Rounds. Durations
// are in nanoseconds in the JSON.
type memorySettings struct {
	Rounds    int           `json:"rounds"`
	Duration  time.Duration `json:"duration_ns"`
	Keyspace  int           `json:"keyspace"`
	ValueSize int           `json:"value_size"`
	Clients   int           `json:"clients"`
}

func (m memorySettings) validate() error {
	switch {
	case m.Rounds < 1:
		return fmt.Errorf("-rounds %d: want at least 1", m.Rounds)
	case m.Duration <= 0:
		return fmt.Errorf("-memory-duration %v: want a positive duration", m.Duration)
	case m.Keyspace < 1:
		return fmt.Errorf("-memory-keys %d: want at least 1", m.Keyspace)
	case m.ValueSize < 1:
		return fmt.Errorf("-memory-value %d: want at least 1", m.ValueSize)
	case m.Clients < 1:
		return fmt.Errorf("-memory-clients %d: want at least 1", m.Clients)
	}
	return nil
}

// memoryRound is what one fresh cluster measured. Sizes are per server, in
// node order.
type memoryRound struct {
	System string `json:"system"`
	Round  int    `json:"round"`
	// Puts is cellResult.Ops: the puts answered within the window; Puts
	// still in flight when it closed may have been stored too.
	Puts cellResult `json:"puts"`
	// StartRSSKiB is each server's RSS once the cluster was ready, before
	// the first put: the baseline that the peak includes.
	StartRSSKiB []uint64 `json:"start_rss_kib"`
	PeakRSSKiB  []uint64 `json:"peak_rss_kib"` // VmHWM once the puts stopped
	RSSKiB      []uint64 `json:"rss_kib"`      // VmRSS once the puts stopped
	// NodeKeys is how many keys each node held after the puts; Keys, the
	// most of them, is the count of distinct keys stored, since a node that
	// has not applied the last puts yet can only hold fewer.
	NodeKeys []int64 `json:"node_keys"`
	Keys     int64   `json:"keys"`
}

// memoryResults is everything a memory run produced: the -json file holds it
// as it is.
type memoryResults struct {
	Date     string         `json:"date"`
	Command  string         `json:"command"`
	Machine  machine        `json:"machine"`
	Settings memorySettings `json:"settings"`
	Rounds   []memoryRound  `json:"rounds"`
}

// runMemory is the memory mode: every round, a fresh cluster of each system
// takes the puts, then gives its RSS and its count of keys; the report goes
// between the bench-memory markers of o.out.
func runMemory(ctx context.Context, res memoryResults, o options, stdout, stderr io.Writer) error {
	m := res.Settings
	keys := keyNames(m.Keyspace)
	for round := 1; round <= m.Rounds; round++ {
		for _, system := range systemsInOrder(round) {
			r, err := runMemoryCluster(ctx, system, round, m, keys, o.raftkv, stderr)
			if err != nil {
				return err
			}
			res.Rounds = append(res.Rounds, r)
		}
	}

	region := renderMemoryReport(res)
	fmt.Fprint(stdout, region)
	if o.jsonPath != "" {
		if err := writeJSON(o.jsonPath, res); err != nil {
			return err
		}
	}
	return writeReport(o.out, memoryBeginMarker, memoryEndMarker, region)
}

// runMemoryCluster starts a fresh cluster of system, puts for m.Duration,
// reads every server's RSS and then every node's count of keys, and stops
// the cluster, whatever happened.
func runMemoryCluster(ctx context.Context, system string, round int, m memorySettings, keys []string, raftkvBin string, progress io.Writer) (_ memoryRound, err error) {
	fmt.Fprintf(progress, "round %d/%d: starting %s\n", round, m.Rounds, system)
	c, err := startCluster(ctx, system, raftkvBin)
	if err != nil {
		return memoryRound{}, fmt.Errorf("round %d: %w", round, err)
	}
	defer func() {
		if stopErr := c.stop(); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("round %d: stop: %w", round, stopErr))
		}
	}()
	fail := func(err error) (memoryRound, error) {
		return memoryRound{}, fmt.Errorf("round %d: %s: %w", round, system, err)
	}

	r := memoryRound{System: system, Round: round}
	if _, r.StartRSSKiB, err = c.rssKiB(); err != nil {
		return fail(err)
	}
	fmt.Fprintf(progress, "round %d/%d %-6s puts for %v: %d clients, keys from %s, values of %d B\n",
		round, m.Rounds, system, m.Duration, m.Clients, thousands(int64(m.Keyspace)), m.ValueSize)
	// No warm-up: the memory the cluster takes from its first put on is
	// what is measured, so every put counts.
	cl := cell{Workload: workloadPut, Clients: m.Clients, ValueSize: m.ValueSize}
	if r.Puts, err = runCell(ctx, c, cl, keys, 0, m.Duration, memorySeed); err != nil {
		return fail(err)
	}
	// RSS first: counting the keys makes the servers work, and could raise
	// their peak.
	if r.PeakRSSKiB, r.RSSKiB, err = c.rssKiB(); err != nil {
		return fail(err)
	}
	if r.NodeKeys, err = countKeys(ctx, c); err != nil {
		return fail(err)
	}
	r.Keys = slices.Max(r.NodeKeys)
	fmt.Fprintf(progress, "round %d/%d %-6s %s puts (%s/s), errors %d%s; %s keys; peak RSS %s MiB, now %s MiB; %s B/key\n",
		round, m.Rounds, system, thousands(r.Puts.Ops), fmtOps(r.Puts.OpsPerSec), r.Puts.Errors, warn([]cellResult{r.Puts}),
		thousands(r.Keys), mibList(r.PeakRSSKiB), mibList(r.RSSKiB), fmtBytesPerKey(r.bytesPerKey()))
	return r, nil
}

// countKeys asks every node, in node order, how many keys it holds.
func countKeys(ctx context.Context, c *cluster) ([]int64, error) {
	counts := make([]int64, len(c.stores))
	for i, s := range c.stores {
		reqCtx, cancel := context.WithTimeout(ctx, requestTimeout)
		n, err := s.countKeys(reqCtx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("count the keys of node %d: %w", i+1, err)
		}
		counts[i] = n
	}
	return counts, nil
}
