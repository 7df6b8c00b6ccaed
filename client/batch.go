package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/raftkv/raftkv/wire"
)

// Batching (docs/API.md "Batches"). Gets, puts and deletes of single keys
// that a Client sends to one endpoint while earlier ones are still in flight
// are gathered and sent together in one POST /v1/batch, where the server
// answers each as if it had come alone. A request sent when the endpoint is
// idle goes alone, as before, so batching adds no wait: a request waits
// only for a batch already on the wire to come back, while the requests
// behind it gather. The outcome of each request and the retry rules of the
// package comment are unchanged: a batch that failed fails each of its
// requests the same way, and each is then retried, or not, on its own.
const (
	// readFlights and writeFlights are how many batches (or lone
	// requests) of reads and of writes one endpoint has in flight at once:
	// enough to keep a node busy while the next batch gathers, few enough
	// that batches grow under load. A read costs a node little beside its
	// HTTP, so reads batch early; a write costs a quorum's fsync, and
	// holding writes back while the node could take them costs more than
	// their HTTP saves until the load is high. Measured with raftkv bench
	// on a 3-node cluster (see docs/PERFORMANCE.md, "What was tried").
	readFlights  = 2
	writeFlights = 8
	// maxBatch is the most requests one batch carries.
	maxBatch = 64
)

// WithoutBatching makes the client send every request on its own.
func WithoutBatching() Option {
	return func(c *Client) { c.noBatching = true }
}

// WithBatchFlights sets how many batches (or lone requests) of reads and
// of writes the client keeps in flight to one endpoint before the next ones
// wait to go together (defaults 2 and 8; values below 1 mean 1). Fewer
// makes larger batches and fewer HTTP requests, at the cost of a wait for
// the requests behind them.
func WithBatchFlights(reads, writes int) Option {
	return func(c *Client) { c.readFlights, c.writeFlights = max(reads, 1), max(writes, 1) }
}

// batcher gathers the batchable reads, or writes, to one endpoint.
type batcher struct {
	c          *Client
	endpoint   string
	maxFlights int
	// unsupported is set once the endpoint answered a batch 404 or 405: a
	// server from before batches. Requests then go alone.
	unsupported atomic.Bool

	mu      sync.Mutex
	queue   []*queued
	flights int
}

// queued is one request waiting in a batcher.
type queued struct {
	ctx   context.Context
	r     *request
	taken bool         // by a flight; guarded by the batcher's mu
	done  chan outcome // buffered: a flight never waits for its caller
}

// outcome is what send returns.
type outcome struct {
	resp *http.Response
	sent bool
	err  error
}

// send sends r, in a batch when others are in flight, and returns what
// Client.send would.
func (b *batcher) send(ctx context.Context, r *request) (*http.Response, bool, error) {
	if b.unsupported.Load() {
		return b.c.sendOne(ctx, b.endpoint, r)
	}
	q := &queued{ctx: ctx, r: r, done: make(chan outcome, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, q)
	if b.flights < b.maxFlights {
		b.flights++
		batch := b.takeLocked()
		b.mu.Unlock()
		go b.fly(batch)
	} else {
		b.mu.Unlock()
	}
	select {
	case o := <-q.done:
		return o.resp, o.sent, o.err
	case <-ctx.Done():
	}
	b.mu.Lock()
	taken := q.taken
	if !taken {
		b.queue = slices.DeleteFunc(b.queue, func(o *queued) bool { return o == q })
	}
	b.mu.Unlock()
	// A request a flight took may be on the wire: a write's outcome is
	// then unknown.
	return nil, taken, &EndpointError{Endpoint: b.endpoint, Err: ctx.Err()}
}

// takeLocked takes up to maxBatch requests from the front of the queue.
func (b *batcher) takeLocked() []*queued {
	n := min(len(b.queue), maxBatch)
	batch := slices.Clone(b.queue[:n])
	b.queue = slices.Delete(b.queue, 0, n)
	for _, q := range batch {
		q.taken = true
	}
	return batch
}

// fly sends batch, then what gathered meanwhile, until the queue is empty.
func (b *batcher) fly(batch []*queued) {
	for {
		b.flush(batch)
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.flights--
			b.mu.Unlock()
			return
		}
		batch = b.takeLocked()
		b.mu.Unlock()
	}
}

// flush sends batch and hands each request its outcome.
func (b *batcher) flush(batch []*queued) {
	if len(batch) == 1 || b.unsupported.Load() {
		var wg sync.WaitGroup
		for _, q := range batch {
			wg.Go(func() {
				resp, sent, err := b.c.sendOne(q.ctx, b.endpoint, q.r)
				q.done <- outcome{resp, sent, err}
			})
		}
		wg.Wait()
		return
	}
	// The batch serves several callers: it is cancelled when the last of
	// them has given up, so a dead endpoint cannot hold a flight forever.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waiting atomic.Int64
	waiting.Store(int64(len(batch)))
	for _, q := range batch {
		stop := context.AfterFunc(q.ctx, func() {
			if waiting.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
	}
	answers, resp, sent, err := b.post(ctx, batch)
	switch {
	case err != nil:
		for _, q := range batch {
			q.done <- outcome{nil, sent, err}
		}
	case resp != nil && (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed):
		// Nothing in it ran: the server does not know batches.
		b.unsupported.Store(true)
		b.flush(batch)
	case resp != nil:
		// The batch as a whole was refused (401, 413, 503 busy...): each
		// request gets the answer, and the retry rules decide.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		for _, q := range batch {
			q.done <- outcome{resp: answerResponse(resp.StatusCode, resp.Header.Clone(), body), sent: true}
		}
	default:
		for i, q := range batch {
			a := answers[i]
			q.done <- outcome{resp: answerResponse(a.Status, a.Header, a.Body), sent: true}
		}
	}
}

// post sends batch as one POST /v1/batch. It returns the answers, or the
// response when the batch as a whole was not served (resp.Body unread), or
// the error of a request that got no answer, with whether it was sent.
func (b *batcher) post(ctx context.Context, batch []*queued) (answers []wire.BatchAnswer, resp *http.Response, sent bool, err error) {
	reqs := make([]wire.BatchRequest, len(batch))
	for i, q := range batch {
		target := q.r.path
		if qs := q.r.query.Encode(); qs != "" {
			target += "?" + qs
		}
		reqs[i] = wire.BatchRequest{Method: q.r.method, Target: target, Header: q.r.header, Body: q.r.body}
	}
	var gotConn atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) },
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.endpoint+"/v1/batch",
		bytes.NewReader(wire.AppendBatchRequests(nil, reqs)))
	if err != nil {
		return nil, nil, false, err
	}
	req.Header.Set("Content-Type", wire.BatchContentType)
	if b.c.authorization != "" {
		req.Header.Set("Authorization", b.c.authorization)
	}
	resp, err = b.c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, nil, gotConn.Load() && !neverRead(err), &EndpointError{Endpoint: b.endpoint, Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, resp, true, nil
	}
	defer resp.Body.Close()
	body, err := readAll(resp)
	if err == nil {
		answers, err = wire.DecodeBatchAnswers(body)
	}
	if err == nil && len(answers) != len(batch) {
		err = fmt.Errorf("%d answers to %d requests", len(answers), len(batch))
	}
	if err != nil {
		return nil, nil, true, &EndpointError{Endpoint: b.endpoint, Err: fmt.Errorf("batch answer: %w", err)}
	}
	return answers, nil, true, nil
}

// maxPresize bounds the buffer readAll allocates up front on the server's
// word (Content-Length).
const maxPresize = 64 << 20

// readAll reads a response's body into one buffer of its declared length,
// instead of growing one as io.ReadAll does: a batch of large values would
// otherwise be copied several times over. A body shorter than declared is
// an error (io.ErrUnexpectedEOF), as net/http makes it.
func readAll(resp *http.Response) ([]byte, error) {
	n := resp.ContentLength
	if n < 0 || n > maxPresize {
		return io.ReadAll(resp.Body)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// answerResponse is one answer of a batch as the response it stands for.
func answerResponse(status int, h http.Header, body []byte) *http.Response {
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
	}
}
