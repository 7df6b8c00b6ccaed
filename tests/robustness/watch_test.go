//go:build unix

package robustness

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/raftkv/raftkv/client"
)

// Watch settings.
const (
	// fenceTimeout bounds the wait for every watcher to receive the fence.
	fenceTimeout = 20 * time.Second
	// watchBackoff keeps a watcher from spinning while no member lets it
	// resume (all of them down, say).
	watchBackoff = 50 * time.Millisecond
	// maxWatchErrors bounds the errors a watchRecord keeps.
	maxWatchErrors = 20
	// watchIdleTimeout replaces a stream that stayed silent for longer
	// than the server's 10 s keepalive, well within fenceTimeout.
	watchIdleTimeout = 15 * time.Second
)

// watchSpec is one watcher of a history.
type watchSpec struct {
	name   string
	key    string // the key, or the prefix
	prefix bool
	// from is the first revision it asks for; 0 asks for the revision
	// after the one the member it reaches first is at.
	from uint64
	slot int // the member it asks first
}

// earlyWatches start with the workload: three watchers of every workload
// key from revision 1, each asking another member first.
func earlyWatches() []watchSpec {
	var specs []watchSpec
	for slot := range clusterSize {
		specs = append(specs, watchSpec{name: fmt.Sprintf("all-%d", slot), key: "key", prefix: true, from: 1, slot: slot})
	}
	return specs
}

// lateWatches start once the workload has made progress: a watcher of one
// group from revision 1, whose first stream begins with the member's
// history (what happened before it started), and one of a single key from
// the current revision.
func lateWatches() []watchSpec {
	return []watchSpec{
		{name: "group1", key: groupPrefix(1), prefix: true, from: 1, slot: 1},
		{name: "key2.0", key: keyName(2, 0), slot: 2},
	}
}

// watchSet runs the watchers of a history. Each watcher is a client.Watcher
// over every member, which resumes by itself where its stream broke; when
// the client gives up (no member answered within its attempts), the
// watcher starts again from the first revision it did not receive, over
// the members of the moment (a replaced member has a new client URL). It
// ends when halted, or with a 410: every member had compacted the revision
// it needed next.
type watchSet struct {
	c      *cluster
	logf   func(string, ...any)
	tr     *http.Transport
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	watchers []*watcher
}

// watcher is one running watcher and what it received.
type watcher struct {
	spec     watchSpec
	hc       *http.Client
	requests atomic.Int64 // watch requests sent

	mu      sync.Mutex
	rec     watchRecord
	stopped bool // its goroutine returned
}

func newWatchSet(ctx context.Context, c *cluster, logf func(string, ...any)) *watchSet {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: time.Second}).DialContext
	ctx, cancel := context.WithCancel(ctx)
	return &watchSet{c: c, logf: logf, tr: tr, ctx: ctx, cancel: cancel}
}

// start starts watchers.
func (ws *watchSet) start(specs ...watchSpec) {
	for _, spec := range specs {
		w := &watcher{spec: spec, rec: watchRecord{Name: spec.name, Key: spec.key, Prefix: spec.prefix, Start: spec.from}}
		w.hc = &http.Client{Transport: countingTransport{rt: ws.tr, n: &w.requests}}
		ws.mu.Lock()
		ws.watchers = append(ws.watchers, w)
		ws.mu.Unlock()
		ws.wg.Add(1)
		go func() {
			defer ws.wg.Done()
			ws.run(w)
			w.mu.Lock()
			w.stopped = true
			w.mu.Unlock()
		}()
	}
}

func (ws *watchSet) list() []*watcher {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return slices.Clone(ws.watchers)
}

// endpoints are the members' client URLs, the one in slot first.
func (ws *watchSet) endpoints(slot int) []string {
	ms := ws.c.members()
	eps := make([]string, len(ms))
	for i := range ms {
		eps[i] = ms[(slot+i)%len(ms)].clientURL()
	}
	return eps
}

func (ws *watchSet) run(w *watcher) {
	from := w.spec.from
	for {
		cl, err := client.New(ws.endpoints(w.spec.slot), client.WithHTTPClient(w.hc), client.WithWatchIdleTimeout(watchIdleTimeout))
		if err != nil {
			panic(err) // the harness made the endpoints
		}
		var watch *client.Watcher
		watch, err = cl.Watch(ws.ctx, []byte(w.spec.key), client.WatchOptions{Prefix: w.spec.prefix, From: from})
		if err == nil {
			if from == 0 {
				if from = watch.ResumeFrom(); from == 0 {
					watch.Close()
					w.ended(errors.New("the first stream did not say the revision it starts after"), 0)
					return
				}
				w.mu.Lock()
				w.rec.Start = from
				w.mu.Unlock()
			}
			var ev client.Event
			for ev, err = watch.Next(); err == nil; ev, err = watch.Next() {
				w.add(ev)
			}
			from = watch.ResumeFrom()
			watch.Close()
		}
		if ws.ctx.Err() != nil {
			return
		}
		if w.ended(err, from) {
			ws.logf("watcher %s ended: %v", w.spec.name, err)
			return
		}
		select {
		case <-time.After(watchBackoff):
		case <-ws.ctx.Done():
			return
		}
	}
}

// countingTransport counts the requests of a watcher's client: its first
// watch, and every resume and retry, on any member.
type countingTransport struct {
	rt http.RoundTripper
	n  *atomic.Int64
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.n.Add(1)
	return t.rt.RoundTrip(r)
}

func (w *watcher) add(ev client.Event) {
	e := watchEvent{
		Delete: ev.Type == client.EventDelete, Key: string(ev.Key), Value: string(ev.Value),
		CreateRev: ev.CreateRevision, ModRev: ev.ModRevision, Version: ev.Version, Rev: ev.Revision,
	}
	w.mu.Lock()
	w.rec.Events = append(w.rec.Events, e)
	w.mu.Unlock()
}

// ended records the error that ended a watch, which was to resume at from,
// and reports whether the watcher is over: a 410 ends it.
func (w *watcher) ended(err error, from uint64) bool {
	var ce *client.CompactedError
	compacted := errors.As(err, &ce)
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.rec.Errors) < maxWatchErrors {
		w.rec.Errors = append(w.rec.Errors, err.Error())
	}
	if compacted {
		w.rec.Compacted, w.rec.End = true, from
		return true
	}
	w.rec.Resumes++
	return false
}

// waitFence waits until every watcher has received the events of revision
// rev, where the fence put keys, or has ended.
func (ws *watchSet) waitFence(ctx context.Context, rev uint64, keys []string) error {
	return poll(ctx, fenceTimeout, func() error {
		for _, w := range ws.list() {
			w.mu.Lock()
			want, got := 0, 0
			for _, k := range keys {
				if w.rec.covers(k) {
					want++
				}
			}
			for i := len(w.rec.Events) - 1; i >= 0 && w.rec.Events[i].Rev >= rev; i-- {
				if w.rec.Events[i].Rev == rev {
					got++
				}
			}
			done := w.stopped || got == want
			last := lastEvent(&w.rec)
			w.mu.Unlock()
			if !done {
				return fmt.Errorf("watcher %s has %d of the fence's %d events at revision %d; its last event is %s", w.spec.name, got, want, rev, last)
			}
		}
		return nil
	})
}

// halt stops the watchers and waits for them.
func (ws *watchSet) halt() {
	ws.cancel()
	ws.wg.Wait()
	ws.tr.CloseIdleConnections()
}

// records returns what each watcher received so far.
func (ws *watchSet) records() []watchRecord {
	var out []watchRecord
	for _, w := range ws.list() {
		w.mu.Lock()
		rec := w.rec
		rec.Events = slices.Clone(rec.Events)
		rec.Errors = slices.Clone(rec.Errors)
		w.mu.Unlock()
		rec.Requests = int(w.requests.Load())
		out = append(out, rec)
	}
	return out
}

// fence writes every workload key in one transaction, once the clients have
// stopped, so that every watcher has a last revision to wait for. It sends
// one until one is acknowledged, and returns every one it sent (those of
// unknown outcome may show up in the watches too) and the acknowledged
// one's revision.
func fence(ctx context.Context, c *cluster, rec *recorder, keys []string) ([]porcupine.Operation, uint64, error) {
	var ops []porcupine.Operation
	var rev uint64
	attempt := 0
	err := poll(ctx, finalReadTimeout, func() error {
		attempt++
		t := &txnInput{}
		for i, k := range keys {
			t.Success = append(t.Success, txnOp{Kind: opPut, Key: k, Value: fmt.Sprintf("fence%d.%d", attempt, i)})
		}
		in := kvInput{Kind: opTxn, Txn: t}
		n := c.members()[attempt%clusterSize]
		rctx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		call := rec.now()
		resp, err := c.api(n.clientURL()).Txn(rctx, t.request())
		ret := rec.now()
		var out kvOutput
		if err == nil {
			var malformed string
			if out, malformed = txnOutput(t, resp); malformed != "" {
				return permanent(fmt.Errorf("fence on %s: %s", n.name(), malformed))
			}
		}
		op := porcupine.Operation{ClientId: workloadClients + clusterSize, Input: in, Call: call, Output: out, Return: ret, Metadata: opMeta{Node: n.name(), Err: "fence"}}
		switch o := classify(in, err); o.status {
		case stOK:
			ops, rev = append(ops, op), out.Rev
			return nil
		case outcomeUnknown:
			op.Output, op.Return = kvOutput{Status: stUnknown}, math.MaxInt64
			ops = append(ops, op)
		case outcomeUnexpected:
			return permanent(fmt.Errorf("fence on %s: %w", n.name(), err))
		}
		return fmt.Errorf("fence on %s: %w", n.name(), err)
	})
	return ops, rev, err
}

// finalState is the store as a listing shows it, by key.
func finalState(kvs []client.KV) map[string]keyState {
	out := make(map[string]keyState, len(kvs))
	for _, kv := range kvs {
		out[string(kv.Key)] = keyState{Exists: true, Value: string(kv.Value), ModRev: kv.ModRevision, CreateRev: kv.CreateRevision, Version: kv.Version}
	}
	return out
}

// watchStats counts what a history's watchers did.
type watchStats struct {
	watchers, events, requests, resumes, compacted int
}

func countWatches(recs []watchRecord) watchStats {
	var s watchStats
	for _, r := range recs {
		s.watchers++
		s.events += len(r.Events)
		s.requests += r.Requests
		s.resumes += r.Resumes
		if r.Compacted {
			s.compacted++
		}
	}
	return s
}
