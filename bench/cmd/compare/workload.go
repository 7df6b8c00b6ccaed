package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// keyspace is how many distinct keys the matrix's workloads touch.
	keyspace = 10000
	// keyPrefix starts every key the harness writes, so that a prefix
	// range counts them.
	keyPrefix = "key-"
	// requestTimeout bounds every request of a cell or of the preload.
	requestTimeout = 10 * time.Second
	// preloadWorkers is how many requests the preload keeps in flight.
	preloadWorkers = 48
	// slabBytes is the size of the random bytes values are cut from:
	// cutting at a random offset gives each request different bytes
	// without the load generator spending CPU on randomness that the
	// servers, sharing the same cores, would miss.
	slabBytes = 1 << 20
	// mixedPutPercent is the share of puts in the mixed workload.
	mixedPutPercent = 10
	// maxErrorRate is the share of failed requests above which a cell is
	// flagged in the report.
	maxErrorRate = 0.01
)

// The workloads of the matrix.
const (
	workloadPut   = "put"   // every request a put
	workloadGet   = "get"   // every request a linearizable get
	workloadSGet  = "sget"  // every request a serializable get
	workloadMixed = "mixed" // 90% linearizable get, 10% put
)

// allWorkloads lists the workloads in the order the matrix runs them.
func allWorkloads() []string {
	return []string{workloadPut, workloadGet, workloadSGet, workloadMixed}
}

// keyNames returns the names of a keyspace of n keys, keyPrefix and the
// number, zero-padded to the same width (at least five digits, so that the
// matrix's keys stay key-00000 … key-09999); made per cluster, not held in
// a package variable, at the cost of a millisecond per 10,000 keys.
func keyNames(n int) []string {
	k := make([]string, n)
	for i := range k {
		k[i] = keyName(i, n)
	}
	return k
}

// keyName is the name of key i of a keyspace of n keys.
func keyName(i, n int) string {
	return fmt.Sprintf("%s%0*d", keyPrefix, max(5, len(strconv.Itoa(n-1))), i)
}

// cell is one point of the matrix.
type cell struct {
	Workload  string `json:"workload"`
	Clients   int    `json:"clients"`
	ValueSize int    `json:"value_size"`
}

func (c cell) String() string {
	return fmt.Sprintf("%s clients=%d value=%dB", c.Workload, c.Clients, c.ValueSize)
}

// cellResult is what one cell measured on one cluster.
type cellResult struct {
	cell
	Ops            int64   `json:"ops"`
	Errors         int64   `json:"errors"`
	FirstError     string  `json:"first_error,omitempty"`
	WindowSeconds  float64 `json:"window_seconds"`
	OpsPerSec      float64 `json:"ops_per_sec"`
	P50Ms          float64 `json:"p50_ms"`
	P99Ms          float64 `json:"p99_ms"`
	CPUTicks       uint64  `json:"cpu_ticks"`
	CPUMicrosPerOp float64 `json:"cpu_us_per_op"`
	// ClientCPUMicrosPerOp is the harness's own CPU per request: the
	// client library's cost, which shares the cores with the servers.
	ClientCPUMicrosPerOp float64 `json:"client_cpu_us_per_op"`
}

// errorRate is the share of the window's requests that failed.
func (r cellResult) errorRate() float64 {
	if r.Ops+r.Errors == 0 {
		return 0
	}
	return float64(r.Errors) / float64(r.Ops+r.Errors)
}

// Phases of a cell, which workers read after every request to know whether
// it counts.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseDone
)

// newSlab returns slabBytes of random printable bytes, at least twice the
// value size so that every offset leaves room for a value.
func newSlab(rng *rand.Rand, valueSize int) []byte {
	b := make([]byte, max(slabBytes, 2*valueSize))
	for i := range b {
		b[i] = byte('!' + rng.IntN('~'-'!'+1))
	}
	return b
}

// randomValue cuts a value of size bytes from slab at a random offset.
func randomValue(rng *rand.Rand, slab []byte, size int) []byte {
	off := rng.IntN(len(slab) - size + 1)
	return slab[off : off+size]
}

// preload writes every key of the keyspace with a value of valueSize bytes,
// so that the gets of the cells that follow find what they ask for.
func preload(ctx context.Context, c *cluster, valueSize int, seed uint64) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	slab := newSlab(rand.New(rand.NewPCG(seed, 0)), valueSize)
	keys := keyNames(keyspace)
	var wg sync.WaitGroup
	for w := range preloadWorkers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)+1))
			s := c.stores[w%len(c.stores)]
			for k := w; k < keyspace; k += preloadWorkers {
				reqCtx, reqCancel := context.WithTimeout(ctx, requestTimeout)
				err := s.put(reqCtx, keys[k], randomValue(rng, slab, valueSize))
				reqCancel()
				if err != nil {
					cancel(fmt.Errorf("put %s: %w", keys[k], err))
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("%s: preload %d keys of %d bytes: %w", c.system, keyspace, valueSize, err)
	}
	return nil
}

// worker is one closed-loop client of a cell: it sends its next request as
// soon as the last one is answered.
type worker struct {
	s         store
	keys      []string
	rng       *rand.Rand
	slab      []byte
	cell      cell
	latencies []time.Duration // of the window's successful requests
	errors    int64           // failed requests in the window
	firstErr  error
}

func (w *worker) run(ctx context.Context, phase *atomic.Int32) {
	for phase.Load() != phaseDone && ctx.Err() == nil {
		begin := time.Now()
		err := w.do(ctx)
		elapsed := time.Since(begin)
		// A request counts in the window it completed in.
		if phase.Load() != phaseMeasure {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return // interrupted: the cell is abandoned, not measured
			}
			w.errors++
			if w.firstErr == nil {
				w.firstErr = err
			}
			continue
		}
		w.latencies = append(w.latencies, elapsed)
	}
}

func (w *worker) do(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	key := w.keys[w.rng.IntN(len(w.keys))]
	switch w.cell.Workload {
	case workloadPut:
		return w.s.put(ctx, key, randomValue(w.rng, w.slab, w.cell.ValueSize))
	case workloadGet:
		return w.s.get(ctx, key, false)
	case workloadSGet:
		return w.s.get(ctx, key, true)
	case workloadMixed:
		if w.rng.IntN(100) < mixedPutPercent {
			return w.s.put(ctx, key, randomValue(w.rng, w.slab, w.cell.ValueSize))
		}
		return w.s.get(ctx, key, false)
	}
	return fmt.Errorf("unknown workload %q", w.cell.Workload)
}

// runCell runs one cell on a cluster: cell.Clients closed-loop workers, worker i
// on node i%3, each request on a key drawn uniformly from keys, a warm-up
// that is not measured, then the measured window. The seed makes the keys
// and values the same for both systems.
func runCell(ctx context.Context, c *cluster, cl cell, keys []string, warmup, window time.Duration, seed uint64) (cellResult, error) {
	slab := newSlab(rand.New(rand.NewPCG(seed, 0)), cl.ValueSize)
	workers := make([]*worker, cl.Clients)
	for i := range workers {
		workers[i] = &worker{
			s:    c.stores[i%len(c.stores)],
			keys: keys,
			rng:  rand.New(rand.NewPCG(seed, uint64(i)+1)),
			slab: slab,
			cell: cl,
		}
	}
	var phase atomic.Int32
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { w.run(ctx, &phase) })
	}
	// Whatever happens below, the workers finish before runCell returns:
	// in-flight requests end by themselves (bounded by requestTimeout) or
	// with ctx.
	stopped := false
	stopWorkers := func() {
		if !stopped {
			phase.Store(phaseDone)
			wg.Wait()
			stopped = true
		}
	}
	defer stopWorkers()

	if err := sleep(ctx, warmup); err != nil {
		return cellResult{}, err
	}
	ticks0, err := cpuTicks(c.pids())
	if err != nil {
		return cellResult{}, err
	}
	self0, err := cpuTicks([]int{os.Getpid()})
	if err != nil {
		return cellResult{}, err
	}
	start := time.Now()
	phase.Store(phaseMeasure)
	if err := sleep(ctx, window); err != nil {
		return cellResult{}, err
	}
	phase.Store(phaseDone)
	elapsed := time.Since(start)
	ticks1, err := cpuTicks(c.pids())
	if err != nil {
		return cellResult{}, err
	}
	self1, err := cpuTicks([]int{os.Getpid()})
	if err != nil {
		return cellResult{}, err
	}
	stopWorkers()
	if err := ctx.Err(); err != nil {
		return cellResult{}, err
	}
	r := summarize(cl, workers, elapsed, ticks1-ticks0)
	r.ClientCPUMicrosPerOp = cpuMicrosPerOp(self1-self0, r.Ops)
	return r, nil
}

// summarize merges the workers' samples into the cell's result.
func summarize(cl cell, workers []*worker, elapsed time.Duration, ticks uint64) cellResult {
	r := cellResult{cell: cl, WindowSeconds: elapsed.Seconds(), CPUTicks: ticks}
	var all []time.Duration
	for _, w := range workers {
		all = append(all, w.latencies...)
		r.Errors += w.errors
		if r.FirstError == "" && w.firstErr != nil {
			r.FirstError = w.firstErr.Error()
		}
	}
	slices.Sort(all)
	r.Ops = int64(len(all))
	r.OpsPerSec = float64(r.Ops) / elapsed.Seconds()
	r.P50Ms = ms(percentile(all, 50))
	r.P99Ms = ms(percentile(all, 99))
	r.CPUMicrosPerOp = cpuMicrosPerOp(ticks, r.Ops)
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
