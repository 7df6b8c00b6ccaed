package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/internal/testcluster"
	"github.com/raftkv/raftkv/wire"
)

// gatedTransport holds every request until open is closed, and counts
// what it sent: requests, batches and the requests batches carried.
type gatedTransport struct {
	http.Transport
	open              chan struct{}
	sent, batches     atomic.Int32
	batched, inFlight atomic.Int32
}

func newGatedTransport() *gatedTransport { return &gatedTransport{open: make(chan struct{})} }

func (g *gatedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	g.sent.Add(1)
	if r.URL.Path == "/v1/batch" {
		g.batches.Add(1)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		reqs, err := wire.DecodeBatchRequests(body)
		if err != nil {
			return nil, err
		}
		g.batched.Add(int32(len(reqs)))
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	select {
	case <-g.open:
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	return g.Transport.RoundTrip(r)
}

// waitUntil polls cond, which the test cannot be told of otherwise, until
// it holds or testTimeout passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	poll := time.NewTicker(time.Millisecond)
	defer poll.Stop()
	for !cond() {
		select {
		case <-poll.C:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestBatchingGathersRequests holds the first requests to an endpoint on the
// wire and checks that the ones sent meanwhile wait and then go together in
// one batch, each with its own correct answer: puts, gets (one of a missing
// key) and a conditional delete that fails.
func TestBatchingGathersRequests(t *testing.T) {
	c, leader := startCluster(t, testcluster.Config{})
	tr := newGatedTransport()
	hc := &http.Client{Transport: tr}
	t.Cleanup(hc.CloseIdleConnections)
	cl := newClient(t, urls(c, leader), client.WithHTTPClient(hc))
	ctx := testContext(t)
	close(tr.open)
	first := mustPut(t, cl, "existing", "old")
	tr.open = make(chan struct{})

	// The first WriteFlights writes and ReadFlights reads go out alone and
	// are held; the rest queue behind them, writes and reads apart.
	const n = 40
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			key := fmt.Appendf(nil, "k%d", i)
			var err error
			switch i % 4 {
			case 0, 1:
				var r client.Result
				r, err = cl.Put(ctx, key, key, client.Condition{})
				if err == nil && (!r.Created || r.Revision <= first.Revision) {
					err = fmt.Errorf("put %s: %+v", key, r)
				}
			case 2:
				var kv client.KV
				kv, err = cl.Get(ctx, []byte("existing"), client.Serializable)
				if err == nil && string(kv.Value) != "old" {
					err = fmt.Errorf("get: %+v", kv)
				}
			case 3:
				_, err = cl.Get(ctx, []byte("missing"), client.Linearizable)
				if errors.Is(err, client.ErrNotFound) {
					err = nil
				} else {
					err = fmt.Errorf("get missing: %v, want not found", err)
				}
			}
			errs[i] = err
		})
	}
	waitUntil(t, "the requests to queue", func() bool {
		return client.Queued(cl, 0, true) == n/2-client.WriteFlights && client.Queued(cl, 0, false) == n/2-client.ReadFlights &&
			tr.inFlight.Load() == client.WriteFlights+client.ReadFlights
	})
	close(tr.open)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	alone := int32(client.WriteFlights + client.ReadFlights)
	if got := tr.sent.Load(); got != 1+alone+2 {
		t.Errorf("%d HTTP requests, want %d: the first put, %d held alone, a batch of writes and one of reads", got, 1+alone+2, alone)
	}
	if b, in := tr.batches.Load(), tr.batched.Load(); b != 2 || in != n-alone {
		t.Errorf("%d batches carried %d requests; want 2 carrying %d", b, in, n-alone)
	}
	// A refused condition in a batch is the caller's own error.
	_, err := cl.Delete(ctx, []byte("existing"), client.IfModRevision(first.Revision+1000))
	wantPrecondition(t, err, first.Revision)
}

// TestBatchingWithAnOlderServer checks that a server that does not know
// batches (404) gets the batched requests again one by one, and that the
// client then stops batching for it.
func TestBatchingWithAnOlderServer(t *testing.T) {
	var plain atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/kv/{key}", func(w http.ResponseWriter, _ *http.Request) {
		plain.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"revision":7}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	tr := newGatedTransport()
	hc := &http.Client{Transport: tr}
	t.Cleanup(hc.CloseIdleConnections)
	cl := newClient(t, []string{srv.URL}, client.WithHTTPClient(hc))
	ctx := testContext(t)
	const n = client.WriteFlights + 4
	var wg sync.WaitGroup
	var failed atomic.Int32
	put := func() {
		if r, err := cl.Put(ctx, []byte("k"), []byte("v"), client.Condition{}); err != nil || r.Revision != 7 {
			t.Errorf("put: %+v, %v", r, err)
			failed.Add(1)
		}
	}
	for range n {
		wg.Go(put)
	}
	waitUntil(t, "the requests to queue", func() bool { return client.Queued(cl, 0, true) == n-client.WriteFlights })
	close(tr.open)
	wg.Wait()
	if got := plain.Load(); got != n || failed.Load() != 0 || tr.batches.Load() != 1 {
		t.Fatalf("%d puts served, %d failed, after %d batches; want %d, 0, 1", got, failed.Load(), tr.batches.Load(), n)
	}
	for range n {
		wg.Go(put)
	}
	wg.Wait()
	if b := tr.batches.Load(); b != 1 {
		t.Fatalf("%d batches sent to a server that refused one", b)
	}
}

// TestBatchingRefusedWhole checks that a batch refused as a whole (503
// busy) fails each request in it as that answer would, so each is retried
// on the next endpoint like a lone request.
func TestBatchingRefusedWhole(t *testing.T) {
	c, leader := startCluster(t, testcluster.Config{})
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":"busy","code":"busy"}`)
	}))
	t.Cleanup(busy.Close)
	tr := newGatedTransport()
	hc := &http.Client{Transport: tr}
	t.Cleanup(hc.CloseIdleConnections)
	cl := newClient(t, []string{busy.URL, c.ClientURL(leader)}, client.WithHTTPClient(hc))
	ctx := testContext(t)
	const n = client.WriteFlights + 4
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			key := fmt.Appendf(nil, "k%d", i)
			if _, err := cl.Put(ctx, key, key, client.Condition{}); err != nil {
				t.Errorf("put %s: %v", key, err)
			}
		})
	}
	waitUntil(t, "the requests to queue", func() bool { return client.Queued(cl, 0, true) == n-client.WriteFlights })
	close(tr.open)
	wg.Wait()
	if tr.batches.Load() == 0 {
		t.Fatal("no batch was sent")
	}
	for i := range n {
		key := fmt.Sprintf("k%d", i)
		if kv, err := cl.Get(ctx, []byte(key), client.Linearizable); err != nil || string(kv.Value) != key {
			t.Fatalf("get %s: %+v, %v", key, kv, err)
		}
	}
}

// TestBatchingQueuedRequestGivesUp checks that a request whose context ends
// while it waits in the queue was never sent: a write is not reported with
// an unknown outcome, and it never reaches the server.
func TestBatchingQueuedRequestGivesUp(t *testing.T) {
	c, leader := startCluster(t, testcluster.Config{})
	tr := newGatedTransport()
	hc := &http.Client{Transport: tr}
	t.Cleanup(hc.CloseIdleConnections)
	cl := newClient(t, urls(c, leader), client.WithHTTPClient(hc), client.WithMaxAttempts(1))
	ctx := testContext(t)
	var wg sync.WaitGroup
	for i := range client.WriteFlights {
		wg.Go(func() { _, _ = cl.Put(ctx, fmt.Appendf(nil, "held%d", i), []byte("v"), client.Condition{}) })
	}
	waitUntil(t, "the flights to be held", func() bool { return tr.inFlight.Load() == client.WriteFlights })
	short, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := cl.Put(short, []byte("gave-up"), []byte("v"), client.Condition{})
		done <- err
	}()
	waitUntil(t, "the put to queue", func() bool { return client.Queued(cl, 0, true) == 1 })
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || errors.Is(err, client.ErrOutcomeUnknown) {
		t.Fatalf("a put given up in the queue: %v; want context.Canceled, not an unknown outcome", err)
	}
	if q := client.Queued(cl, 0, true); q != 0 {
		t.Fatalf("%d requests still queued", q)
	}
	close(tr.open)
	wg.Wait()
	if _, err := cl.Get(ctx, []byte("gave-up"), client.Linearizable); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("the put given up in the queue reached the server: get = %v", err)
	}
}

// TestBatchFlightsOption checks that WithBatchFlights sets how many
// requests go out before the rest wait: with one, the second request waits.
func TestBatchFlightsOption(t *testing.T) {
	c, leader := startCluster(t, testcluster.Config{})
	tr := newGatedTransport()
	hc := &http.Client{Transport: tr}
	t.Cleanup(hc.CloseIdleConnections)
	cl := newClient(t, urls(c, leader), client.WithHTTPClient(hc), client.WithBatchFlights(1, 0))
	ctx := testContext(t)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			if _, err := cl.Put(ctx, fmt.Appendf(nil, "k%d", i), []byte("v"), client.Condition{}); err != nil {
				t.Error(err)
			}
		})
	}
	waitUntil(t, "two writes to queue behind one", func() bool { return client.Queued(cl, 0, true) == 2 && tr.inFlight.Load() == 1 })
	close(tr.open)
	wg.Wait()
	if b, in := tr.batches.Load(), tr.batched.Load(); b != 1 || in != 2 {
		t.Fatalf("%d batches carried %d requests; want 1 carrying 2", b, in)
	}
}
