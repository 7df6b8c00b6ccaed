package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/raftkv/raftkv/client"
)

const (
	// progressInterval is how often the progress line is redrawn.
	progressInterval = time.Second
	// cleanupTimeout bounds --cleanup: listing the prefix and deleting it.
	cleanupTimeout = 30 * time.Second
)

// benchPrefixEnds are the characters a --key-prefix must end in for
// --cleanup: a separator, so that the prefix and a number are bench's own.
const benchPrefixEnds = "-_/.:"

// errNotBenchKey is the refusal of --cleanup to delete a prefix that holds
// a key bench does not write: the prefix is shared with other data.
var errNotBenchKey = errors.New("not a key bench writes")

type benchFlags struct {
	endpoints string
	op        string
	clients   int
	// requests bounds the run by count, duration by time; whichever comes
	// first ends it. 0 is no bound; at least one must be set.
	requests    int
	duration    time.Duration
	keys        int
	keyPrefix   string
	valueSize   int
	consistency string
	cleanup     bool
	output      string // text (or "") or json
	tls         tlsFlags
	creds       credFlags

	// progress, when set, receives a progress line every progressEvery
	// (default progressInterval); the command sets it to standard error
	// when that is a terminal.
	progress      io.Writer
	progressEvery time.Duration
}

func newBenchCommand() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Generate load against a cluster and report throughput and latency",
		Long: `Send requests from --clients concurrent clients, spread over the --endpoints,
until --requests have been sent or --duration has passed, whichever comes
first, and print throughput and latency percentiles. With --duration alone
the run is bounded by time only. SIGINT or SIGTERM ends the run early, and a
second signal kills. When the run ends no request starts; those in flight
finish and count, then come the report and --cleanup.

Keys are --key-prefix followed by a number below --keys. Requests go through
the Go client, one per endpoint, as an application's would (batched while a
node is busy, failing over when it is down): writes are PUT /v1/kv/{key},
reads GET /v1/kv/{key} with the chosen consistency.
--cleanup deletes every key under --key-prefix after the run, in one atomic
range delete, and refuses (before and after the run) if a key there is not
one bench writes. On a terminal a progress line is redrawn on standard error
every second.`,
		Example: `  raftkv bench --op put --clients 64 --requests 100000 --keys 100000
  raftkv bench --duration 30s --key-prefix tmp/bench- --cleanup
  raftkv bench --op get --duration 10s -o json | jq .latency_ms.p99`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl := cmd.Flags()
			// The flags that choose which keys are written and deleted come
			// from the command line only: a stray RAFTKV_CLEANUP must never
			// turn a run into a range delete.
			if err := applyEnv(flagsExcept(fl, "key-prefix", "cleanup")); err != nil {
				return &usageError{err}
			}
			if fl.Changed("duration") && !fl.Changed("requests") {
				f.requests = 0 // the default count would cut the duration short
			}
			if w, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(w.Fd())) {
				f.progress = w
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			// Once a signal ended the run, the next one kills as usual,
			// even during the cleanup.
			defer context.AfterFunc(ctx, stop)()
			return runBench(ctx, cmd.OutOrStdout(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.endpoints, "endpoints", defaultEndpoints, "comma-separated client URLs")
	fl.StringVar(&f.op, "op", "put", "put or get")
	fl.IntVar(&f.clients, "clients", 64, "concurrent clients")
	fl.IntVar(&f.requests, "requests", 10000, "total requests (0: no limit, with --duration); no limit when only --duration is given")
	fl.DurationVar(&f.duration, "duration", 0, "run for this long (0: until --requests are sent)")
	fl.IntVar(&f.keys, "keys", 1000, "distinct keys written or read")
	fl.StringVar(&f.keyPrefix, "key-prefix", "bench-", "keys are this prefix followed by a number (command line only)")
	fl.IntVar(&f.valueSize, "value-size", 128, "bytes per value")
	fl.StringVar(&f.consistency, "consistency", "linearizable", "linearizable or serializable (get)")
	fl.BoolVar(&f.cleanup, "cleanup", false, "after the run, delete every key under --key-prefix, which must be non-empty (command line only)")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json (env RAFTKV_OUTPUT)")
	f.tls.register(fl)
	f.creds.register(fl)
	usageErrors(cmd)
	return cmd
}

// flagsExcept returns a set with the flags of fs but the named ones. The
// flags are shared, so setting one in the new set sets it in fs.
func flagsExcept(fs *pflag.FlagSet, names ...string) *pflag.FlagSet {
	out := pflag.NewFlagSet(fs.Name(), pflag.ContinueOnError)
	fs.VisitAll(func(fl *pflag.Flag) {
		if !slices.Contains(names, fl.Name) {
			out.AddFlag(fl)
		}
	})
	return out
}

// check returns the usage error of flags that do not go together.
func (f *benchFlags) check() error {
	switch {
	case f.clients <= 0 || f.keys <= 0 || f.valueSize < 0:
		return usagef("--clients and --keys must be positive, --value-size not negative")
	case f.requests < 0 || f.duration < 0:
		return usagef("--requests and --duration must not be negative")
	case f.requests == 0 && f.duration == 0:
		return usagef("--requests 0 (no limit) needs a --duration")
	case f.op != "put" && f.op != "get":
		return usagef("--op %q: use put or get", f.op)
	case f.output != "" && f.output != "text" && f.output != "json":
		return usagef("--output %q: use text or json", f.output)
	case f.cleanup && f.keyPrefix == "":
		return usagef("--cleanup needs a non-empty --key-prefix: an empty one would delete every key")
	case f.cleanup && !strings.ContainsAny(f.keyPrefix[len(f.keyPrefix)-1:], benchPrefixEnds):
		// "user" would take user42 for a key bench wrote; "user-" would not.
		return usagef("--cleanup needs a --key-prefix that ends in one of %s (such as bench- or tmp/bench-), so that bench's numbered keys cannot be mistaken for others", strings.Join(strings.Split(benchPrefixEnds, ""), " "))
	}
	if f.op == "get" {
		if _, err := parseConsistency(f.consistency); err != nil {
			return err
		}
	}
	return nil
}

func runBench(ctx context.Context, out io.Writer, f benchFlags) error {
	if err := f.check(); err != nil {
		return err
	}
	var endpoints []string
	for e := range strings.SplitSeq(f.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			endpoints = append(endpoints, strings.TrimSuffix(e, "/"))
		}
	}
	if len(endpoints) == 0 {
		return usagef("--endpoints: no endpoint")
	}
	tlsConfig, err := f.tls.config()
	if err != nil {
		return err
	}
	credOpts, err := f.creds.options()
	if err != nil {
		return err
	}
	// One client per node, each starting at its own node: the load is
	// spread over the cluster as the workers are, and a worker whose node
	// fails over moves on as any client of the package would.
	opts := append(credOpts, client.WithTLS(tlsConfig))
	clients := make([]*client.Client, len(endpoints))
	for i := range endpoints {
		c, err := client.New(append(slices.Clone(endpoints[i:]), endpoints[:i]...), opts...)
		if err != nil {
			return &usageError{fmt.Errorf("--endpoints: %w", err)}
		}
		defer c.Close()
		clients[i] = c
	}
	kv := clients[0]
	if f.cleanup {
		// Refuse before writing anything, rather than after a long run.
		cctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
		err := checkBenchKeys(cctx, kv, f.keyPrefix)
		cancel()
		if err != nil {
			return err
		}
	}

	r := runLoad(ctx, clients, f)
	var cleanupErr error
	if f.cleanup {
		// An interrupted run is cleaned up too: ctx ended the load, not
		// the command.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		n, err := deleteBenchKeys(cctx, kv, f.keyPrefix)
		cancel()
		if err != nil {
			cleanupErr = err
		} else {
			r.deleted = &n
		}
	}
	if f.output == "json" {
		err = (&printer{w: out, json: true}).object(r.json())
	} else {
		err = r.print(out, f.keyPrefix)
	}
	return cmp.Or(cleanupErr, err)
}

// benchResult is what a run measured.
type benchResult struct {
	op          string
	clients     int
	elapsed     time.Duration
	latencies   []time.Duration // of the successful requests, sorted
	failures    map[string]int  // failed requests by reason
	interrupted bool            // the context ended the run
	deleted     *int64          // keys --cleanup deleted
}

// runLoad sends the requests of f and measures them, until the requests
// are sent, the duration passed or ctx ended. Worker i sends through
// clients[i%len(clients)]. Requests in flight then finish (within
// requestTimeout): --cleanup must come after every write, or a write still
// on its way could land after the delete.
func runLoad(ctx context.Context, clients []*client.Client, f benchFlags) benchResult {
	reqCtx := context.WithoutCancel(ctx)
	value := []byte(strings.Repeat("v", f.valueSize))
	var next atomic.Int64
	var lat latencyLog
	var failures failureCounts
	start := time.Now()
	more := func() bool {
		return ctx.Err() == nil && (f.duration == 0 || time.Since(start) < f.duration)
	}
	var workers sync.WaitGroup
	for w := range f.clients {
		c := clients[w%len(clients)]
		workers.Go(func() {
			var key []byte
			for more() {
				i := next.Add(1) - 1
				if f.requests > 0 && i >= int64(f.requests) {
					return
				}
				key = strconv.AppendInt(append(key[:0], f.keyPrefix...), i%int64(f.keys), 10)
				t0 := time.Now()
				if err := benchRequest(reqCtx, c, f.op, key, value, client.Consistency(f.consistency)); err != nil {
					failures.add(err)
					continue
				}
				lat.add(time.Since(t0))
			}
		})
	}
	stopProgress := make(chan struct{})
	var progress sync.WaitGroup
	if f.progress != nil {
		every := cmp.Or(f.progressEvery, progressInterval)
		progress.Go(func() { showProgress(f.progress, every, start, &lat, &failures, stopProgress) })
	}
	workers.Wait()
	elapsed := time.Since(start)
	close(stopProgress)
	progress.Wait()
	return benchResult{op: f.op, clients: f.clients, elapsed: elapsed, latencies: lat.sorted(),
		failures: failures.snapshot(), interrupted: ctx.Err() != nil}
}

// showProgress redraws one line on w every interval until stop is closed,
// then clears it for the report. Write errors are ignored: a terminal that
// went away is no reason to stop the run.
func showProgress(w io.Writer, every time.Duration, start time.Time, lat *latencyLog, failures *failureCounts, stop <-chan struct{}) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	last, lastDone := start, 0
	for {
		select {
		case <-stop:
			_, _ = io.WriteString(w, "\r\x1b[K")
			return
		case now := <-tick.C:
			sorted, failed := lat.sorted(), failures.total()
			done := len(sorted) + failed
			rate := float64(done-lastDone) / now.Sub(last).Seconds()
			last, lastDone = now, done
			// \x1b[K clears what a longer previous line left.
			_, _ = fmt.Fprintf(w, "\r%v elapsed, %d requests, %.0f ops/s, %d errors, p99 %v\x1b[K",
				now.Sub(start).Round(time.Second), done, rate, failed, threeDigits(percentile(sorted, 0.99)))
		}
	}
}

// percentile returns the p-th quantile of sorted, 0 when it is empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// latencyLog collects latencies from the workers. sorted merges what came
// since its last call into the sorted list, so that the progress line can
// read a p99 every second without sorting the whole run again.
type latencyLog struct {
	mu    sync.Mutex
	fresh []time.Duration

	mergeMu sync.Mutex
	merged  []time.Duration
}

func (l *latencyLog) add(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fresh = append(l.fresh, d)
}

// sorted returns every latency added so far, sorted. The slice is shared
// with later calls: read it only.
func (l *latencyLog) sorted() []time.Duration {
	l.mu.Lock()
	fresh := l.fresh
	l.fresh = nil
	l.mu.Unlock()
	slices.Sort(fresh)
	l.mergeMu.Lock()
	defer l.mergeMu.Unlock()
	l.merged = mergeSorted(l.merged, fresh)
	return l.merged
}

// mergeSorted merges two sorted slices into a new one, or returns a when b
// is empty. It never changes a or b.
func mergeSorted(a, b []time.Duration) []time.Duration {
	if len(b) == 0 {
		return a
	}
	out := make([]time.Duration, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0] <= b[0] {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// print writes the text report: one line of throughput and latency, one per
// failure reason, and what --cleanup deleted.
func (r *benchResult) print(out io.Writer, prefix string) error {
	ok, failed := len(r.latencies), r.failed()
	interrupted := ""
	if r.interrupted {
		interrupted = " (interrupted)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d ok, %d failed in %v%s: %.0f req/s; latency p50 %v p90 %v p99 %v max %v\n",
		r.op, ok, failed, r.elapsed.Round(time.Millisecond), interrupted, r.rate(),
		threeDigits(percentile(r.latencies, 0.50)), threeDigits(percentile(r.latencies, 0.90)),
		threeDigits(percentile(r.latencies, 0.99)), threeDigits(percentile(r.latencies, 1)))
	// Most frequent reason first.
	reasons := slices.Collect(maps.Keys(r.failures))
	slices.SortFunc(reasons, func(a, b string) int {
		return cmp.Or(cmp.Compare(r.failures[b], r.failures[a]), cmp.Compare(a, b))
	})
	for _, reason := range reasons {
		fmt.Fprintf(&b, "  failed %d× %s\n", r.failures[reason], reason)
	}
	if r.deleted != nil {
		fmt.Fprintf(&b, "cleanup: deleted %d keys under %q\n", *r.deleted, prefix)
	}
	_, err := io.WriteString(out, b.String())
	return err
}

// rate is the throughput of successful requests, per second.
func (r *benchResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0 // not NaN, which JSON cannot hold
	}
	return float64(len(r.latencies)) / r.elapsed.Seconds()
}

func (r *benchResult) failed() int {
	n := 0
	for _, c := range r.failures {
		n += c
	}
	return n
}

// benchJSON is the report with -o json. Latencies are milliseconds, to the
// microsecond; docs/CLI.md documents the fields.
type benchJSON struct {
	Op                string         `json:"op"`
	Clients           int            `json:"clients"`
	ElapsedSeconds    float64        `json:"elapsed_seconds"`
	OK                int            `json:"ok"`
	Failed            int            `json:"failed"`
	RequestsPerSecond float64        `json:"requests_per_second"`
	LatencyMs         latencyJSON    `json:"latency_ms"`
	Failures          map[string]int `json:"failures"`
	Interrupted       bool           `json:"interrupted"`
	Deleted           *int64         `json:"deleted,omitempty"`
}

type latencyJSON struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func (r *benchResult) json() benchJSON {
	ms := func(p float64) float64 { return float64(percentile(r.latencies, p).Microseconds()) / 1000 }
	ok := len(r.latencies)
	failures := r.failures
	if failures == nil {
		failures = map[string]int{} // {} rather than null: always an object
	}
	return benchJSON{
		Op:                r.op,
		Clients:           r.clients,
		ElapsedSeconds:    math.Round(r.elapsed.Seconds()*1000) / 1000,
		OK:                ok,
		Failed:            r.failed(),
		RequestsPerSecond: math.Round(r.rate()*10) / 10,
		LatencyMs:         latencyJSON{P50: ms(0.50), P90: ms(0.90), P99: ms(0.99), Max: ms(1)},
		Failures:          failures,
		Interrupted:       r.interrupted,
		Deleted:           r.deleted,
	}
}

// checkBenchKeys fails with errNotBenchKey if a key under prefix is not
// one bench writes (the prefix and a number), so that --cleanup never
// deletes data that only shares the prefix.
func checkBenchKeys(ctx context.Context, c *client.Client, prefix string) error {
	for kv, err := range c.ListAll(ctx, []byte(prefix), client.ListOptions{KeysOnly: true, Limit: maxPageSize}) {
		if err != nil {
			return fmt.Errorf("cleanup: list --key-prefix %q: %w", prefix, err)
		}
		if !isBenchKey(kv.Key, prefix) {
			return fmt.Errorf("cleanup: --key-prefix %q holds %q: %w; nothing deleted, choose another prefix", prefix, kv.Key, errNotBenchKey)
		}
	}
	return nil
}

// isBenchKey reports whether key is prefix followed by decimal digits.
func isBenchKey(key []byte, prefix string) bool {
	n, ok := strings.CutPrefix(string(key), prefix)
	return ok && n != "" && strings.Trim(n, "0123456789") == ""
}

// deleteBenchKeys deletes every key under prefix in one atomic range
// delete, after checkBenchKeys. A key written under the prefix between the
// check and the delete is deleted too.
func deleteBenchKeys(ctx context.Context, c *client.Client, prefix string) (int64, error) {
	if err := checkBenchKeys(ctx, c, prefix); err != nil {
		return 0, err
	}
	res, err := c.DeleteRange(ctx, []byte(prefix))
	if err != nil {
		return 0, fmt.Errorf("cleanup: %w", err)
	}
	return res.Deleted, nil
}

// threeDigits rounds d to three significant digits, as many as a
// comparison of runs on a noisy machine can use.
func threeDigits(d time.Duration) time.Duration {
	unit := time.Duration(1)
	for d >= 1000*unit {
		unit *= 10
	}
	return d.Round(unit)
}

// failureCounts counts failed requests by reason, so that a run with
// failures says whether they were refusals, timeouts or lost connections.
type failureCounts struct {
	mu       sync.Mutex
	byReason map[string]int
}

func (fc *failureCounts) add(err error) {
	fc.addReason(failureReason(err))
}

// failureReason names why a request failed without naming its key, so that
// failures group: "status 503 no_leader", or the transport's error.
func failureReason(err error) string {
	var apiErr *client.APIError
	var endpointErr *client.EndpointError
	switch {
	case errors.As(err, &apiErr) && apiErr.Code != "":
		return fmt.Sprintf("status %d %s", apiErr.Status, apiErr.Code)
	case errors.As(err, &apiErr):
		return fmt.Sprintf("status %d", apiErr.Status)
	case errors.Is(err, client.ErrOutcomeUnknown) && errors.As(err, &endpointErr):
		return "outcome unknown: " + endpointErr.Err.Error()
	case errors.As(err, &endpointErr):
		return endpointErr.Err.Error()
	}
	return err.Error()
}

func (fc *failureCounts) addReason(reason string) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.byReason == nil {
		fc.byReason = make(map[string]int)
	}
	fc.byReason[reason]++
}

func (fc *failureCounts) total() int {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	n := 0
	for _, c := range fc.byReason {
		n += c
	}
	return n
}

// snapshot returns a copy of the counts.
func (fc *failureCounts) snapshot() map[string]int {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return maps.Clone(fc.byReason)
}

// requestTimeout bounds one request of the load.
const requestTimeout = 30 * time.Second

// benchRequest sends one request of the load. A get of a key not written yet
// is a success: the read was served.
func benchRequest(ctx context.Context, c *client.Client, op string, key, value []byte, consistency client.Consistency) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var err error
	if op == "put" {
		_, err = c.Put(ctx, key, value, client.Condition{})
	} else if _, err = c.Get(ctx, key, consistency); errors.Is(err, client.ErrNotFound) {
		err = nil
	}
	return err
}
