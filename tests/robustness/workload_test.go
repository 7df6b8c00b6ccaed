//go:build unix

package robustness

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/wire"
)

// Workload settings, after etcd's robustness traffic: few keys (keyGroups
// groups of groupSize), so that operations on one key overlap and conflict;
// sequential clients, some pinned to one node and some rotating over all of
// them.
const (
	workloadClients = 8
	// opTimeout bounds one request on the client side: the server answers
	// 504 after --request-timeout, so this only fires for a node that does
	// not answer at all (SIGSTOP).
	opTimeout = 2500 * time.Millisecond
	// unavailableBackoff keeps a client from spinning on a node that is down.
	unavailableBackoff = 50 * time.Millisecond
)

// workload runs the clients of one history.
type workload struct {
	c            *cluster
	rec          *recorder
	groups       [][]string // the keys, by group
	keys         []string
	serializable bool // reads ask for consistency=serializable

	conns     *endpointClients
	stop      chan struct{}
	wg        sync.WaitGroup
	definite  atomic.Int64 // operations with a definite answer
	unknowns  atomic.Int64 // operations of unknown outcome
	mu        sync.Mutex
	unexpects []string // answers the API never gives; each fails the history
}

// logicalClient is one sequential client. It sends through the workload's
// client.Client for each endpoint (shared), each sending every request
// exactly once (WithMaxAttempts(1)), so no failover can hide an outcome.
// Requests the logical clients send to one endpoint at once go in batches
// (POST /v1/batch), as an application's would: each is still one recorded
// operation.
type logicalClient struct {
	id    int
	slot  int // the node it is pinned to, or -1 to rotate over all
	turn  int
	rng   *rand.Rand
	conns *endpointClients
	seq   int
	// lastSeen is the value and mod revision this client last saw for each
	// key (a read or its own put); compare-and-swap and the compares of
	// transactions use it. Absent when the client last saw the key missing,
	// or does not know.
	lastSeen map[string]seenKV
}

// seenKV is a value and the mod revision it was seen with.
type seenKV struct {
	value string
	rev   uint64
}

func startWorkload(c *cluster, rec *recorder, seed uint64, serializable bool) *workload {
	w := &workload{c: c, rec: rec, serializable: serializable, stop: make(chan struct{})}
	for g := range keyGroups {
		var group []string
		for i := range groupSize {
			group = append(group, keyName(g, i))
		}
		w.groups = append(w.groups, group)
		w.keys = append(w.keys, group...)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: time.Second}).DialContext
	tr.MaxIdleConnsPerHost = workloadClients
	conns := &endpointClients{hc: &http.Client{Transport: tr}, byURL: map[string]*client.Client{}}
	for i := range workloadClients {
		lc := &logicalClient{
			id: i, slot: -1,
			rng:      rand.New(rand.NewPCG(seed, uint64(i))),
			conns:    conns,
			lastSeen: map[string]seenKV{},
		}
		if i%2 == 0 { // clients 0, 2, 4, 6 are pinned to nodes 0, 1, 2, 0
			lc.slot = (i / 2) % clusterSize
		}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.run(lc)
		}()
	}
	w.conns = conns
	return w
}

// endpointClients is the workload's client.Client for each endpoint,
// shared by the logical clients.
type endpointClients struct {
	hc    *http.Client
	mu    sync.Mutex
	byURL map[string]*client.Client
}

// halt stops the clients and waits for them; each finishes its current
// operation first.
func (w *workload) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
	w.conns.hc.CloseIdleConnections()
}

func (w *workload) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// waitDefinite waits until n more operations than mark got a definite
// answer, and fails after d: a history where nothing happens checks
// nothing.
func (w *workload) waitDefinite(ctx context.Context, mark, n int64, d time.Duration) error {
	return poll(ctx, d, func() error {
		if got := w.definite.Load() - mark; got < n {
			return fmt.Errorf("only %d operations got a definite answer in %v, want %d", got, d, n)
		}
		return nil
	})
}

func (w *workload) unexpected() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.unexpects...)
}

func (w *workload) run(lc *logicalClient) {
	for !w.stopped() {
		slot := lc.slot
		if slot < 0 {
			slot = lc.turn % clusterSize
			lc.turn++
		}
		endpoint := w.c.clientURL(slot)
		in := lc.next(w.groups)
		in.Serializable = in.Kind == opGet && w.serializable
		if !w.do(lc, endpoint, in) {
			select {
			case <-time.After(unavailableBackoff):
			case <-w.stop:
			}
		}
	}
}

// next chooses the next operation: 30% linearizable gets, 20% puts, 12%
// compare-and-swaps on the revision last seen (create-only when none), 6%
// create-only puts, 8% deletes, 6% deletes conditional on the revision last
// seen, 18% transactions (nextTxn).
func (lc *logicalClient) next(groups [][]string) kvInput {
	group := groups[lc.rng.IntN(len(groups))]
	key := group[lc.rng.IntN(len(group))]
	seen, known := lc.lastSeen[key]
	switch r := lc.rng.IntN(100); {
	case r < 30:
		return kvInput{Kind: opGet, Key: key}
	case r < 50:
		return kvInput{Kind: opPut, Key: key, Value: lc.value()}
	case r < 62 && known:
		return kvInput{Kind: opPut, Key: key, Value: lc.value(), Cond: condModRev, CondRev: seen.rev}
	case r < 68:
		return kvInput{Kind: opPut, Key: key, Value: lc.value(), Cond: condAbsent}
	case r < 76 || (r < 82 && !known):
		return kvInput{Kind: opDelete, Key: key}
	case r < 82:
		return kvInput{Kind: opDelete, Key: key, Cond: condModRev, CondRev: seen.rev}
	}
	return kvInput{Kind: opTxn, Txn: lc.nextTxn(group)}
}

// nextTxn chooses a transaction on three keys a, b, c of group, in equal
// parts: put a and b if a is as last seen (else read both); move a to b
// (if a holds the value last seen, or exists: get a, put b, delete a; else
// read both); read the three at one revision; put a and delete b if c is
// as last seen (else read the three). "As last seen" is the key's mod
// revision last seen, or its absence when the client knows none.
func (lc *logicalClient) nextTxn(group []string) *txnInput {
	perm := lc.rng.Perm(len(group))
	a, b, c := group[perm[0]], group[perm[1]], group[perm[2]]
	switch lc.rng.IntN(4) {
	case 0:
		return &txnInput{
			Compare: []txnCompare{lc.asSeen(a)},
			Success: []txnOp{{Kind: opPut, Key: a, Value: lc.value()}, {Kind: opPut, Key: b, Value: lc.value()}},
			Failure: []txnOp{{Kind: opGet, Key: a}, {Kind: opGet, Key: b}},
		}
	case 1:
		cmp := txnCompare{Key: a, Target: wire.TargetVersion, Op: ">", Number: 0}
		if seen, ok := lc.lastSeen[a]; ok {
			cmp = txnCompare{Key: a, Target: wire.TargetValue, Op: "=", Value: seen.value}
		}
		return &txnInput{
			Compare: []txnCompare{cmp},
			Success: []txnOp{{Kind: opGet, Key: a}, {Kind: opPut, Key: b, Value: lc.value()}, {Kind: opDelete, Key: a}},
			Failure: []txnOp{{Kind: opGet, Key: a}, {Kind: opGet, Key: b}},
		}
	case 2:
		var gets []txnOp
		for _, key := range group {
			gets = append(gets, txnOp{Kind: opGet, Key: key})
		}
		return &txnInput{Success: gets}
	}
	return &txnInput{
		Compare: []txnCompare{lc.asSeen(c)},
		Success: []txnOp{{Kind: opPut, Key: a, Value: lc.value()}, {Kind: opDelete, Key: b}, {Kind: opGet, Key: c}},
		Failure: []txnOp{{Kind: opGet, Key: a}, {Kind: opGet, Key: b}, {Kind: opGet, Key: c}},
	}
}

// asSeen compares key's mod revision with the one last seen, or its
// version with 0 (absent) when the client knows none.
func (lc *logicalClient) asSeen(key string) txnCompare {
	if seen, ok := lc.lastSeen[key]; ok {
		return txnCompare{Key: key, Target: wire.TargetModRevision, Op: "=", Number: seen.rev}
	}
	return txnCompare{Key: key, Target: wire.TargetVersion, Op: "=", Number: 0}
}

// value returns a value unique in the history.
func (lc *logicalClient) value() string {
	lc.seq++
	return fmt.Sprintf("c%d.%d", lc.id, lc.seq)
}

func (lc *logicalClient) client(endpoint string) *client.Client {
	ec := lc.conns
	ec.mu.Lock()
	defer ec.mu.Unlock()
	cl, ok := ec.byURL[endpoint]
	if !ok {
		var err error
		// One batch in flight: the logical clients' requests to one node
		// go together as often as they can, so that batches meet every
		// fault.
		cl, err = client.New([]string{endpoint}, client.WithHTTPClient(ec.hc), client.WithMaxAttempts(1), client.WithBatchFlights(1, 1))
		if err != nil {
			panic(err) // the harness made the endpoint
		}
		ec.byURL[endpoint] = cl
	}
	return cl
}

// do sends one operation and records it. It returns false when the node was
// unavailable (nothing was applied, nothing is recorded).
func (w *workload) do(lc *logicalClient, endpoint string, in kvInput) bool {
	cl := lc.client(endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	key := []byte(in.Key)
	call := w.rec.now()
	var out kvOutput
	var err error
	var malformed string // an answer of the wrong shape
	switch in.Kind {
	case opGet:
		consistency := client.Linearizable
		if in.Serializable {
			consistency = client.Serializable
		}
		var kv client.KV
		kv, err = cl.Get(ctx, key, consistency)
		out = kvOutput{Value: string(kv.Value), Rev: kv.ModRevision, CreateRev: kv.CreateRevision, Version: kv.Version, StoreRev: kv.Revision}
	case opPut:
		var res client.Result
		res, err = cl.Put(ctx, key, []byte(in.Value), condition(in))
		out = kvOutput{Rev: res.Revision, ModRev: res.ModRevision, CreateRev: res.CreateRevision, Version: res.Version, Created: res.Created}
	case opDelete:
		var res client.DeleteResult
		res, err = cl.Delete(ctx, key, condition(in))
		out = kvOutput{Rev: res.Revision, Deleted: res.Deleted}
	case opTxn:
		var res client.TxnResponse
		res, err = cl.Txn(ctx, in.Txn.request())
		if err == nil {
			out, malformed = txnOutput(in.Txn, res)
		}
	}
	ret := w.rec.now()
	node := w.nodeName(endpoint)
	if malformed != "" {
		w.mu.Lock()
		w.unexpects = append(w.unexpects, fmt.Sprintf("%s on %s: %s", describeInput(in), node, malformed))
		w.mu.Unlock()
		return false
	}
	switch o := classify(in, err); o.status {
	case outcomeUnavailable:
		return false
	case outcomeUnexpected:
		w.mu.Lock()
		w.unexpects = append(w.unexpects, fmt.Sprintf("%s on %s: %v", describeInput(in), node, err))
		w.mu.Unlock()
		return false
	case outcomeUnknown:
		w.unknowns.Add(1)
		out = kvOutput{Status: stUnknown}
		ret = math.MaxInt64
		lc.forget(in)
	case stPrecondition:
		out = kvOutput{Status: stPrecondition, Rev: o.etag}
	case stNotFound:
		out = kvOutput{Status: stNotFound}
	default:
		out.Status = stOK
	}
	if out.Status != stUnknown {
		w.definite.Add(1)
		lc.learn(in, out)
	}
	meta := opMeta{Node: node}
	if err != nil {
		meta.Err = err.Error()
	}
	w.rec.add(porcupine.Operation{ClientId: lc.id, Input: in, Call: call, Output: out, Return: ret, Metadata: meta})
	return true
}

// learn remembers the values and revisions an answer showed.
func (lc *logicalClient) learn(in kvInput, out kvOutput) {
	switch {
	case in.Kind == opTxn:
		for i, op := range in.Txn.branch(out.Succeeded) {
			r := out.Results[i]
			if op.Kind == opPut || (op.Kind == opGet && r.Found) {
				lc.lastSeen[op.Key] = seenKV{value: r.Value, rev: r.ModRev}
			} else {
				delete(lc.lastSeen, op.Key)
			}
		}
	case out.Status == stOK && in.Kind == opPut:
		lc.lastSeen[in.Key] = seenKV{value: in.Value, rev: out.Rev}
	case out.Status == stOK && in.Kind == opGet:
		lc.lastSeen[in.Key] = seenKV{value: out.Value, rev: out.Rev}
	default:
		// Missing (a later compare-and-swap creates it), or a 412, which
		// shows a revision without its value.
		delete(lc.lastSeen, in.Key)
	}
}

// forget drops what the client saw of the keys of an operation of unknown
// outcome.
func (lc *logicalClient) forget(in kvInput) {
	if in.Kind != opTxn {
		delete(lc.lastSeen, in.Key)
		return
	}
	for _, key := range in.Txn.keys() {
		delete(lc.lastSeen, key)
	}
}

func (w *workload) nodeName(endpoint string) string {
	for _, n := range w.c.members() {
		if n.clientURL() == endpoint {
			return n.name()
		}
	}
	return endpoint
}

func condition(in kvInput) client.Condition {
	switch in.Cond {
	case condModRev:
		return client.IfModRevision(in.CondRev)
	case condAbsent:
		return client.IfNotExists()
	}
	return client.Condition{}
}

// outcome classes of a request.
const (
	outcomeUnavailable status = 100 + iota // not applied: leave it out
	outcomeUnknown                         // may or may not have been applied
	outcomeUnexpected                      // an answer the API never gives here
)

type outcome struct {
	status status
	etag   uint64 // for a 412: the key's mod revision, 0 when absent
}

// classify maps a client error to an outcome, by the rules of docs/API.md:
// 503 (and a request that never left) means not applied; 504, a broken
// connection after sending, and a client timeout mean unknown. A read (or a
// transaction that only reads) that failed in any way changed nothing, so
// it is left out.
func classify(in kvInput, err error) outcome {
	var pf *client.PreconditionFailedError
	var apiErr *client.APIError
	switch {
	case err == nil:
		return outcome{status: stOK}
	case errors.As(err, &pf) && in.Kind != opGet && in.Cond != condNone:
		return outcome{status: stPrecondition, etag: pf.ModRevision}
	case errors.Is(err, client.ErrNotFound) && (in.Kind == opGet || (in.Kind == opDelete && in.Cond == condNone)):
		return outcome{status: stNotFound}
	case errors.Is(err, client.ErrUnavailable):
		return outcome{status: outcomeUnavailable}
	case errors.Is(err, client.ErrOutcomeUnknown):
		if in.readOnly() {
			return outcome{status: outcomeUnavailable}
		}
		return outcome{status: outcomeUnknown}
	case errors.As(err, &apiErr):
		return outcome{status: outcomeUnexpected}
	case in.readOnly():
		return outcome{status: outcomeUnavailable}
	}
	// Anything else (a response that broke off, say) after the request may
	// have been sent: the write may have happened.
	return outcome{status: outcomeUnknown}
}

// request is the transaction as the client sends it.
func (t *txnInput) request() client.TxnRequest {
	var req client.TxnRequest
	for _, c := range t.Compare {
		wc := client.TxnCompare{Key: []byte(c.Key), Target: c.Target, Op: c.Op}
		n := c.Number
		switch c.Target {
		case wire.TargetValue:
			wc.Value = []byte(c.Value)
		case wire.TargetVersion:
			wc.Version = &n
		case wire.TargetModRevision:
			wc.ModRevision = &n
		}
		req.Compare = append(req.Compare, wc)
	}
	req.Success, req.Failure = txnRequestOps(t.Success), txnRequestOps(t.Failure)
	return req
}

func txnRequestOps(ops []txnOp) []client.TxnOp {
	out := make([]client.TxnOp, len(ops))
	for i, op := range ops {
		key := []byte(op.Key)
		switch op.Kind {
		case opGet:
			out[i].Get = &client.TxnKey{Key: key}
		case opPut:
			out[i].Put = &client.TxnPut{Key: key, Value: []byte(op.Value)}
		case opDelete:
			out[i].Delete = &client.TxnKey{Key: key}
		}
	}
	return out
}

// txnOutput records a transaction's answer, or says how its shape differs
// from what the request asked for (a result per operation of the branch
// that ran, each under the operation's name, for the operation's key).
func txnOutput(t *txnInput, resp client.TxnResponse) (kvOutput, string) {
	ops := t.branch(resp.Succeeded)
	out := kvOutput{Status: stOK, Succeeded: resp.Succeeded, Rev: resp.Revision, Results: make([]txnResult, len(ops))}
	if len(resp.Results) != len(ops) {
		return out, fmt.Sprintf("%d results for the %d operations of the branch that ran", len(resp.Results), len(ops))
	}
	for i, op := range ops {
		r := resp.Results[i]
		var kv *wire.KeyValue
		switch {
		case op.Kind == opGet && r.Get != nil:
			out.Results[i].Found = r.Get.Found
			kv = r.Get.KV
			if r.Get.Found != (kv != nil) {
				return out, fmt.Sprintf("result %d: found is %v with kv %v", i, r.Get.Found, kv)
			}
		case op.Kind == opPut && r.Put != nil:
			out.Results[i].Created = r.Put.Created
			kv = &r.Put.KV
		case op.Kind == opDelete && r.Delete != nil:
			out.Results[i].Deleted = r.Delete.Deleted
		default:
			return out, fmt.Sprintf("result %d does not answer %s", i, describeTxnOps([]txnOp{op}))
		}
		if kv == nil {
			continue
		}
		if string(kv.Key) != op.Key {
			return out, fmt.Sprintf("result %d is for key %q, not %q", i, kv.Key, op.Key)
		}
		res := &out.Results[i]
		res.Value, res.ModRev, res.CreateRev, res.Version = string(kv.Value), kv.ModRevision, kv.CreateRevision, kv.Version
	}
	return out, ""
}
