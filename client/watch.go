package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// maxEventBytes bounds one server-sent event (a 1.5 MiB value is 2 MiB in
// base64).
const maxEventBytes = 16 << 20

// EventType says what a change did.
type EventType string

// The event types of a watch.
const (
	EventPut    EventType = "put"
	EventDelete EventType = "delete"
)

// Event is one change of one key. A change of several keys (a range delete)
// is one event per key, all with the same Revision.
type Event struct {
	Type           EventType `json:"type"`
	Key            []byte    `json:"key"`
	Value          []byte    `json:"value,omitempty"`
	CreateRevision uint64    `json:"create_revision,omitempty"`
	ModRevision    uint64    `json:"mod_revision,omitempty"`
	Version        uint64    `json:"version,omitempty"`
	Revision       uint64    `json:"revision"`
}

// WatchOptions select what a watch reports.
type WatchOptions struct {
	// Prefix watches every key that starts with the key (an empty key with
	// Prefix watches every key).
	Prefix bool
	// From starts with the changes of this revision; 0 starts with the
	// next one.
	From uint64
}

// Watcher is a stream of events, read one by one with Next.
//
// The watcher resumes by itself: when its stream breaks (a dead connection,
// a node shutting down, no keepalive within the idle timeout) or the server
// ends it with an error event carrying resume_from (the watcher lagged, the
// node installed a snapshot), it connects again, to the next endpoint when
// the connection failed, and continues from the first revision it has not
// delivered. Events are delivered whole revisions at a time, so a revision
// cut in half by a broken stream is delivered once, entirely, after the
// resume: never a gap, never a duplicate. A 410 sends the watch to the
// other endpoints, since each member keeps its own history (a restarted
// member only what came after its last snapshot, a member that installed
// the leader's snapshot only what came after that); if every endpoint
// answers 410, Next returns a *CompactedError: list again, and watch from
// the listing's revision + 1. If no endpoint answers within the client's attempts, Next
// returns that error; ResumeFrom then says where to start a new watch.
//
// A Watcher owns no goroutine: Next reads the stream itself. Next must be
// called from one goroutine at a time; Close may be called from any, at any
// time, and makes a blocked Next return ErrClosed. Cancelling the context
// given to Watch ends it too (Next returns the context's error).
type Watcher struct {
	c      *Client
	ctx    context.Context
	cancel context.CancelFunc
	path   string
	prefix bool

	mu     sync.Mutex
	closed bool
	conn   *watchConn // nil between streams

	// The fields below belong to the goroutine calling Next.
	resumeFrom uint64  // first revision not yet delivered; 0 until known
	pending    []Event // events of a revision whose end has not been seen
	ready      []Event // complete revisions, to hand out
	err        error   // the error that ended the watcher
	breaks     int     // streams ended in a row without reading anything
}

// watchConn is one watch stream.
type watchConn struct {
	endpoint int
	body     io.ReadCloser
	r        *bufio.Reader
	idle     *time.Timer // cancels the stream when it stays silent
	cancel   context.CancelFunc
	got      bool // a line was read from this stream
	once     sync.Once
}

func (wc *watchConn) close() {
	wc.once.Do(func() {
		wc.idle.Stop()
		wc.cancel()
		wc.body.Close()
	})
}

// Watch starts watching key (or every key with the prefix key). It returns
// once the first stream is established, with any error of the server: a
// *CompactedError when opts.From is older than the history of every
// endpoint.
func (c *Client) Watch(ctx context.Context, key []byte, opts WatchOptions) (*Watcher, error) {
	path := "/v1/watch/"
	if len(key) > 0 {
		path += escapeKey(key)
	} else if !opts.Prefix {
		return nil, errors.New("watch: empty key")
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{c: c, ctx: ctx, cancel: cancel, path: path, prefix: opts.Prefix, resumeFrom: opts.From}
	if err := w.connect(); err != nil {
		cancel()
		return nil, fmt.Errorf("watch %q: %w", key, err)
	}
	return w, nil
}

// errWatchIdle is the cause with which a stream's idle timer cancels it.
var errWatchIdle = errors.New("no answer within the idle timeout")

// connect opens a stream from w.resumeFrom.
func (w *Watcher) connect() error {
	ctx, cancelCause := context.WithCancelCause(w.ctx)
	cancel := func() { cancelCause(nil) }
	idle := time.AfterFunc(w.c.watchIdleTimeout, func() { cancelCause(errWatchIdle) })
	q := url.Values{}
	if w.prefix {
		q.Set("prefix", "true")
	}
	if w.resumeFrom > 0 {
		q.Set("from", strconv.FormatUint(w.resumeFrom, 10))
	}
	resp, endpoint, err := w.c.do(ctx, &request{
		method: http.MethodGet, path: w.path, query: q,
		header: http.Header{"Accept": {"text/event-stream"}}, idempotent: true,
	})
	if err != nil {
		idle.Stop()
		// The cause tells the idle timer's cancel from every other end of
		// the request: ctx.Err() alone would be set by the cancel below.
		timedOut := errors.Is(context.Cause(ctx), errWatchIdle)
		cancel()
		if timedOut {
			return fmt.Errorf("no answer within %v: %w", w.c.watchIdleTimeout, err)
		}
		return err
	}
	if w.resumeFrom == 0 {
		// The stream starts with the revision after the one it reflects.
		if rev := headerUint(resp.Header, "X-Raftkv-Revision"); rev > 0 {
			w.resumeFrom = rev + 1
		}
	}
	conn := &watchConn{endpoint: endpoint, body: resp.Body, r: bufio.NewReaderSize(resp.Body, 64<<10), idle: idle, cancel: cancel}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		conn.close()
		return ErrClosed
	}
	w.conn = conn
	return nil
}

// Next returns the next event, waiting for it. After an error every call
// returns the same error.
func (w *Watcher) Next() (Event, error) {
	for {
		if len(w.ready) > 0 {
			ev := w.ready[0]
			w.ready[0] = Event{}
			w.ready = w.ready[1:]
			return ev, nil
		}
		if w.err != nil {
			return Event{}, w.err
		}
		w.mu.Lock()
		conn, closed := w.conn, w.closed
		w.mu.Unlock()
		switch {
		case closed:
			w.err = ErrClosed
		case w.ctx.Err() != nil:
			w.err = w.ctx.Err()
		case conn == nil:
			w.resume()
		default:
			w.read(conn)
		}
	}
}

// resume connects again after a stream ended, pausing first if streams keep
// ending without a word.
func (w *Watcher) resume() {
	if w.breaks > w.c.maxAttempts {
		w.err = fmt.Errorf("watch: the stream ended %d times in a row without any data", w.breaks)
		return
	}
	if w.breaks > 1 {
		if err := pause(w.ctx, backoff(w.breaks-1, 0)); err != nil {
			return // Next reports the context's end
		}
	}
	if err := w.connect(); err != nil {
		w.err = fmt.Errorf("watch: reconnect at revision %d: %w", w.resumeFrom, err)
	}
}

// read reads one event block from conn and files its event; when the stream
// ends, it closes conn so that Next resumes.
func (w *Watcher) read(conn *watchConn) {
	var name, id string
	var data []byte
	for {
		line, err := readLine(conn.r)
		if err != nil {
			w.endStream(conn, err)
			return
		}
		conn.idle.Reset(w.c.watchIdleTimeout)
		if !conn.got {
			conn.got, w.breaks = true, 0
		}
		if len(line) == 0 {
			break // the end of an event block
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			name = string(value)
		case "data":
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, value...)
		case "id":
			id = string(value)
		}
	}
	switch name {
	case "put", "delete":
		var ev Event
		if err := json.Unmarshal(data, &ev); err != nil {
			w.fail(conn, fmt.Errorf("watch: bad event %q: %w", data, err))
			return
		}
		if len(w.pending) > 0 && w.pending[0].Revision != ev.Revision {
			w.flush() // a new revision began, so the last one is whole
		}
		w.pending = append(w.pending, ev)
	case "error":
		var e struct {
			Error      string `json:"error"`
			Code       string `json:"code"`
			ResumeFrom uint64 `json:"resume_from"`
		}
		_ = json.Unmarshal(data, &e)
		if e.ResumeFrom == 0 {
			w.fail(conn, fmt.Errorf("watch ended: %w", &APIError{Code: e.Code, Message: e.Error}))
			return
		}
		// The server delivered everything before resume_from.
		var keep []Event
		for _, ev := range w.pending {
			if ev.Revision < e.ResumeFrom {
				keep = append(keep, ev)
			}
		}
		w.pending = keep
		w.flush()
		w.resumeFrom = e.ResumeFrom
		w.endStream(conn, nil)
		return
	}
	if id != "" {
		rev, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			w.fail(conn, fmt.Errorf("watch: bad event id %q", id))
			return
		}
		w.flush()
		w.resumeFrom = rev + 1
	}
}

// flush makes the pending revision ready.
func (w *Watcher) flush() {
	if len(w.pending) == 0 {
		return
	}
	w.ready = append(w.ready, w.pending...)
	w.resumeFrom = w.pending[len(w.pending)-1].Revision + 1
	w.pending = nil
}

// endStream closes a stream that ended, so that Next resumes, at the next
// endpoint: the node may be stopping, cut off, or too busy to keep up. The
// events of a revision the stream did not finish are dropped: the resume
// sends them again.
func (w *Watcher) endStream(conn *watchConn, err error) {
	w.dropConn(conn)
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed || w.ctx.Err() != nil {
		return // Next reports why
	}
	w.pending = nil
	if w.resumeFrom == 0 {
		if err == nil {
			err = errors.New("the stream ended")
		}
		w.err = fmt.Errorf("watch: the stream broke before the server said its start revision: %w", err)
		return
	}
	if !conn.got {
		w.breaks++
	}
	n := int64(len(w.c.endpoints))
	w.c.preferred.CompareAndSwap(int64(conn.endpoint), (int64(conn.endpoint)+1)%n)
}

// fail ends the watcher with err.
func (w *Watcher) fail(conn *watchConn, err error) {
	w.dropConn(conn)
	w.err = err
}

func (w *Watcher) dropConn(conn *watchConn) {
	w.mu.Lock()
	if w.conn == conn {
		w.conn = nil
	}
	w.mu.Unlock()
	conn.close()
}

// ResumeFrom is the first revision the watcher has not delivered (0 while
// unknown): watch from it to continue where this watcher stopped. Call it
// from the goroutine that calls Next.
func (w *Watcher) ResumeFrom() uint64 {
	if len(w.ready) > 0 {
		return w.ready[0].Revision
	}
	return w.resumeFrom
}

// Close stops the watcher and releases its connection. It is safe to call
// from any goroutine, more than once.
func (w *Watcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	conn := w.conn
	w.conn = nil
	w.mu.Unlock()
	w.cancel()
	if conn != nil {
		conn.close()
	}
	return nil
}

// readLine reads one line of the stream without its line ending.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxEventBytes {
			return nil, fmt.Errorf("watch: a line longer than %d bytes", maxEventBytes)
		}
		switch {
		case err == nil:
			line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}
