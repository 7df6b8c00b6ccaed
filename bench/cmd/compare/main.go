// Command compare runs the same closed-loop workloads against a fresh
// three-node raftkv cluster and a fresh three-node etcd cluster, round after
// round, and writes the side-by-side report (bench/README.md). With -memory
// it measures memory instead: peak RSS and bytes per key after a spell of
// puts of random keys.
//
// Usage (from bench/): go run ./cmd/compare [-quick] [flags]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// warmup is how long each cell runs before its window, unmeasured: long
// enough for connections to open and the servers' caches to settle.
const warmup = time.Second

// settings is the matrix and its timing. Durations are in nanoseconds in
// the JSON.
type settings struct {
	Workloads []string      `json:"workloads"`
	Clients   []int         `json:"clients"`
	Values    []int         `json:"values"`
	Rounds    int           `json:"rounds"`
	Duration  time.Duration `json:"duration_ns"`
	Warmup    time.Duration `json:"warmup_ns"`
	Keyspace  int           `json:"keyspace"`
}

// options are the command line's other flags.
type options struct {
	raftkv   string
	out      string
	jsonPath string
	memory   *memorySettings // the memory mode's settings; nil runs the matrix
}

// memoryFlags are the flags of the memory mode alone, and matrixFlags those
// of the matrix alone: each is refused in the other mode rather than
// silently ignored.
func memoryFlags() []string {
	return []string{"memory-duration", "memory-keys", "memory-value", "memory-clients"}
}

func matrixFlags() []string { return []string{"workloads", "clients", "values", "duration"} }

func main() {
	code := 0
	var err error
	if len(os.Args) > 1 && os.Args[1] == etcdMemberCmd {
		err = runEtcdMember(os.Args[2:])
	} else {
		err = run(os.Args[1:], os.Stdout, os.Stderr)
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "compare:", err)
		code = 1
	}
	os.Exit(code)
}

// parseFlags reads the command line. -quick changes the defaults (of the
// matrix, or with -memory of the memory mode); a flag given explicitly wins
// over both.
func parseFlags(args []string, stderr io.Writer) (settings, options, error) {
	var (
		s                       = settings{Warmup: warmup, Keyspace: keyspace}
		m                       memorySettings
		o                       options
		quick, memory           bool
		workloads, clients, val string
	)
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.raftkv, "raftkv", "../bin/raftkv", "raftkv binary (make build)")
	fs.StringVar(&o.out, "out", "../docs/PERFORMANCE.md", "Markdown file whose marked region receives the report")
	fs.StringVar(&o.jsonPath, "json", "", "also write every result to this JSON file")
	fs.BoolVar(&quick, "quick", false, "small matrix: clients 64, values 256, rounds 2, duration 3s; with -memory: rounds 1, memory-duration 30s")
	fs.StringVar(&workloads, "workloads", strings.Join(allWorkloads(), ","), "comma-separated workloads: put, get, sget, mixed")
	fs.StringVar(&clients, "clients", "1,16,64,256", "comma-separated client counts")
	fs.StringVar(&val, "values", "256,4096", "comma-separated value sizes in bytes")
	fs.IntVar(&s.Rounds, "rounds", 3, "rounds; each starts a fresh cluster of each system")
	fs.DurationVar(&s.Duration, "duration", 5*time.Second, "measured window of each cell")
	fs.BoolVar(&memory, "memory", false, "measure memory instead of the matrix: peak RSS and bytes per key after puts of random keys")
	fs.DurationVar(&m.Duration, "memory-duration", 120*time.Second, "with -memory: how long the puts run")
	fs.IntVar(&m.Keyspace, "memory-keys", 1000000, "with -memory: how many keys the puts draw from, uniformly")
	fs.IntVar(&m.ValueSize, "memory-value", 64, "with -memory: value size in bytes")
	fs.IntVar(&m.Clients, "memory-clients", 64, "with -memory: closed-loop clients")
	if err := fs.Parse(args); err != nil {
		return s, o, err
	}
	if fs.NArg() > 0 {
		return s, o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	wrongMode, mode := memoryFlags(), "-memory"
	if memory {
		wrongMode, mode = matrixFlags(), "the matrix (without -memory)"
	}
	for _, name := range wrongMode {
		if set[name] {
			return s, o, fmt.Errorf("-%s is a flag of %s alone", name, mode)
		}
	}
	if quick {
		quickDefaults := map[string]func(){
			"clients":  func() { clients = "64" },
			"values":   func() { val = "256" },
			"rounds":   func() { s.Rounds = 2 },
			"duration": func() { s.Duration = 3 * time.Second },
		}
		if memory {
			quickDefaults = map[string]func(){
				"rounds":          func() { s.Rounds = 1 },
				"memory-duration": func() { m.Duration = 30 * time.Second },
			}
		}
		for name, apply := range quickDefaults {
			if !set[name] {
				apply()
			}
		}
	}

	var err error
	if s.Workloads, err = parseWorkloads(workloads); err != nil {
		return s, o, err
	}
	if s.Clients, err = parsePositiveInts("-clients", clients); err != nil {
		return s, o, err
	}
	if s.Values, err = parsePositiveInts("-values", val); err != nil {
		return s, o, err
	}
	switch {
	case s.Rounds < 1:
		return s, o, fmt.Errorf("-rounds %d: want at least 1", s.Rounds)
	case s.Duration <= 0:
		return s, o, fmt.Errorf("-duration %v: want a positive duration", s.Duration)
	}
	if memory {
		m.Rounds = s.Rounds
		if err := m.validate(); err != nil {
			return s, o, err
		}
		o.memory = &m
	}
	return s, o, nil
}

func parseWorkloads(list string) ([]string, error) {
	var out []string
	for w := range strings.SplitSeq(list, ",") {
		w = strings.TrimSpace(w)
		if !slices.Contains(allWorkloads(), w) {
			return nil, fmt.Errorf("-workloads: unknown workload %q (want put, get, sget or mixed)", w)
		}
		out = append(out, w)
	}
	return out, nil
}

func parsePositiveInts(name, list string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %q is not a positive integer", name, f)
		}
		out = append(out, n)
	}
	return out, nil
}

// run is the comparison: parse, run every round, report.
func run(args []string, stdout, stderr io.Writer) error {
	s, o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	// The first SIGINT or SIGTERM stops the load and then every server in
	// order; once ctx has ended the signals go back to their defaults, so a
	// second one kills the harness (and Pdeathsig then its servers).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop)

	res := results{
		Date:     now(),
		Command:  "cd bench && go run ./cmd/compare " + shellJoin(args),
		Machine:  describeMachine(ctx),
		Settings: s,
	}
	if o.memory != nil {
		return runMemory(ctx, memoryResults{Date: res.Date, Command: res.Command, Machine: res.Machine, Settings: *o.memory}, o, stdout, stderr)
	}
	for round := 1; round <= s.Rounds; round++ {
		for _, system := range systemsInOrder(round) {
			cr, err := runCluster(ctx, system, round, s, o, stderr)
			if err != nil {
				return err
			}
			res.Clusters = append(res.Clusters, cr)
		}
	}

	region := renderReport(res)
	fmt.Fprint(stdout, region)
	if o.jsonPath != "" {
		if err := writeJSON(o.jsonPath, res); err != nil {
			return err
		}
	}
	return writeReport(o.out, beginMarker, endMarker, region)
}

// systemsInOrder is the order in which a round runs the systems: raftkv
// first in odd rounds, etcd first in even ones. Alternating spreads any drift
// of the machine (other load, heat, page cache) over both.
func systemsInOrder(round int) []string {
	if round%2 == 0 {
		return []string{"etcd", "raftkv"}
	}
	return []string{"raftkv", "etcd"}
}

// startCluster starts a fresh cluster of system, raftkv's from the binary
// raftkvBin.
func startCluster(ctx context.Context, system, raftkvBin string) (*cluster, error) {
	if system == "raftkv" {
		return startRaftkv(ctx, raftkvBin)
	}
	return startEtcd(ctx)
}

// runCluster starts a fresh cluster of system, runs the whole matrix on it,
// and stops it, whatever happened.
func runCluster(ctx context.Context, system string, round int, s settings, o options, progress io.Writer) (_ clusterResult, err error) {
	fmt.Fprintf(progress, "round %d/%d: starting %s\n", round, s.Rounds, system)
	c, err := startCluster(ctx, system, o.raftkv)
	if err != nil {
		return clusterResult{}, fmt.Errorf("round %d: %w", round, err)
	}
	defer func() {
		if stopErr := c.stop(); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("round %d: stop: %w", round, stopErr))
		}
	}()

	cr := clusterResult{System: system, Round: round}
	keys := keyNames(keyspace)
	seed := uint64(0)
	for _, size := range s.Values {
		if needsPreload(s.Workloads) {
			seed++
			if err := preload(ctx, c, size, seed); err != nil {
				return clusterResult{}, fmt.Errorf("round %d: %w", round, err)
			}
		}
		for _, w := range s.Workloads {
			for _, n := range s.Clients {
				seed++
				cl := cell{Workload: w, Clients: n, ValueSize: size}
				r, err := runCell(ctx, c, cl, keys, s.Warmup, s.Duration, seed)
				if err != nil {
					return clusterResult{}, fmt.Errorf("round %d: %s: %s: %w", round, system, cl, err)
				}
				fmt.Fprintf(progress, "round %d/%d %-6s %-5s clients=%-3d value=%-5d %8.0f ops/s  p50 %6.2f ms  p99 %6.2f ms  cpu %5.0f µs/op  errors %d%s\n",
					round, s.Rounds, system, w, n, size, r.OpsPerSec, r.P50Ms, r.P99Ms, r.CPUMicrosPerOp, r.Errors, warn([]cellResult{r}))
				cr.Cells = append(cr.Cells, r)
			}
		}
	}
	if cr.PeakRSSKiB, err = c.peakRSSKiB(); err != nil {
		return clusterResult{}, fmt.Errorf("round %d: %w", round, err)
	}
	return cr, nil
}

// needsPreload reports whether any workload reads keys, which must exist.
func needsPreload(workloads []string) bool {
	for _, w := range workloads {
		if w != workloadPut {
			return true
		}
	}
	return false
}

// shellJoin quotes args for a shell where they need it.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~!") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
