package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
)

type benchFlags struct {
	endpoints   string
	op          string
	clients     int
	requests    int
	keys        int
	valueSize   int
	consistency string
	tls         tlsFlags
}

func newBenchCommand() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Generate load against a cluster and report throughput and latency",
		Long: `Send --requests requests from --clients concurrent clients, spread over the
--endpoints, and print throughput and latency percentiles. Writes use the root
API (PUT /{key}); reads use GET /{key} with the chosen consistency.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags()); err != nil {
				return err
			}
			return runBench(cmd.Context(), cmd.OutOrStdout(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.endpoints, "endpoints", "http://127.0.0.1:12380,http://127.0.0.1:22380,http://127.0.0.1:32380", "comma-separated client URLs")
	fl.StringVar(&f.op, "op", "put", "put or get")
	fl.IntVar(&f.clients, "clients", 64, "concurrent clients")
	fl.IntVar(&f.requests, "requests", 10000, "total requests")
	fl.IntVar(&f.keys, "keys", 1000, "distinct keys written or read")
	fl.IntVar(&f.valueSize, "value-size", 128, "bytes per value")
	fl.StringVar(&f.consistency, "consistency", "linearizable", "linearizable or serializable (get)")
	f.tls.register(fl)
	return cmd
}

func runBench(ctx context.Context, out io.Writer, f benchFlags) error {
	if f.clients <= 0 || f.requests <= 0 || f.keys <= 0 || f.valueSize < 0 {
		return usagef("--clients, --requests and --keys must be positive")
	}
	if f.op != "put" && f.op != "get" {
		return usagef("--op %q: use put or get", f.op)
	}
	tlsConfig, err := f.tls.config()
	if err != nil {
		return err
	}
	endpoints := strings.Split(f.endpoints, ",")
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: f.clients, TLSClientConfig: tlsConfig}}
	defer client.CloseIdleConnections()
	value := strings.Repeat("v", f.valueSize)

	var next atomic.Int64
	var failures failureCounts
	latencies := make([][]time.Duration, f.clients)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range f.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(f.requests) || ctx.Err() != nil {
					return
				}
				target := fmt.Sprintf("%s/bench-%d", endpoints[int(i)%len(endpoints)], i%int64(f.keys))
				t0 := time.Now()
				if err := benchRequest(ctx, client, f.op, target, value, f.consistency); err != nil {
					failures.add(err)
					continue
				}
				latencies[c] = append(latencies[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(latencies...)
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return threeDigits(all[min(len(all)-1, int(p*float64(len(all))))])
	}
	if _, err := fmt.Fprintf(out, "%s: %d ok, %d failed in %v: %.0f req/s; latency p50 %v p90 %v p99 %v max %v\n",
		f.op, len(all), failures.total(), elapsed.Round(time.Millisecond), float64(len(all))/elapsed.Seconds(),
		pct(0.50), pct(0.90), pct(0.99), pct(1)); err != nil {
		return err
	}
	return failures.print(out)
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
	reason := err.Error()
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		reason = urlErr.Err.Error() // without the URL, which names the key
	}
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

// print lists the reasons, most frequent first.
func (fc *failureCounts) print(out io.Writer) error {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	reasons := slices.Collect(maps.Keys(fc.byReason))
	slices.SortFunc(reasons, func(a, b string) int {
		return cmp.Or(cmp.Compare(fc.byReason[b], fc.byReason[a]), cmp.Compare(a, b))
	})
	for _, r := range reasons {
		if _, err := fmt.Fprintf(out, "  failed %d× %s\n", fc.byReason[r], r); err != nil {
			return err
		}
	}
	return nil
}

// statusError is an answer with an unexpected status; code is the error code
// from a JSON error body, when there is one.
type statusError struct {
	status int
	code   string
}

func (e *statusError) Error() string {
	if e.code == "" {
		return fmt.Sprintf("status %d", e.status)
	}
	return fmt.Sprintf("status %d %s", e.status, e.code)
}

func benchRequest(ctx context.Context, client *http.Client, op, target, value, consistency string) error {
	method, body, want := http.MethodGet, io.Reader(nil), http.StatusOK
	if op == "put" {
		method, body, want = http.MethodPut, strings.NewReader(value), http.StatusNoContent
	} else {
		target += "?consistency=" + consistency
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == want || (op == "get" && resp.StatusCode == http.StatusNotFound) {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	var apiErr struct {
		Code string `json:"code"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&apiErr) // the code is optional
	return &statusError{status: resp.StatusCode, code: apiErr.Code}
}
