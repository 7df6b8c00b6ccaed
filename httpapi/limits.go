package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"time"
)

// Defaults of the limits on clients (docs/SECURITY.md, "Limits on clients").
const (
	// DefaultMaxConcurrentRequests bounds the requests in progress at once,
	// watches aside. With the body limit it bounds the memory that request
	// bodies can hold: 256 × 1.5 MiB.
	DefaultMaxConcurrentRequests = 256
	// DefaultMaxWatchers bounds the watch streams open at once.
	DefaultMaxWatchers = 1024
	// DefaultBodyTimeout bounds how long a request body may take to arrive.
	DefaultBodyTimeout = 30 * time.Second
	// DefaultWriteTimeout bounds each write of a watch stream, and the
	// writing of any other response once it is ready.
	DefaultWriteTimeout = 10 * time.Second
)

// limits admits requests: at most MaxConcurrentRequests at a time, watches
// apart, and at most MaxWatchers watches. Beyond either it answers 503 busy
// at once, without queueing: a queue would only hold more connections.
type limits struct {
	requests chan struct{}
	watchers chan struct{}
}

func newLimits(cfg Config) *limits {
	return &limits{
		requests: make(chan struct{}, cfg.MaxConcurrentRequests),
		watchers: make(chan struct{}, cfg.MaxWatchers),
	}
}

// slots says which slots a route's requests take.
type slots uint8

const (
	requestSlots slots = iota
	watchSlots
	// noSlots: the probes and metrics an operator needs most when a node
	// is flooded are served beyond the limits. They are cheap and take no
	// body.
	noSlots
)

// slots is the pool rt's requests are admitted from.
func (rt *route) slots() slots {
	switch rt.label {
	case routeLivez, routeReadyz, routeMetrics:
		return noSlots
	case routeV1Watch, routeV1LeaseStream:
		return watchSlots
	}
	return requestSlots
}

// admit decides whether r is served. When it is not, admit has answered and
// returns ok false; otherwise the caller calls release when done. It also
// sets the deadlines that keep a slow client from holding the request's
// slot: for the body, BodyTimeout; for a response other than a watch's,
// BodyTimeout + RequestTimeout + WriteTimeout from now (a watch sets its
// own deadline before each write).
func (s *Server) admit(w http.ResponseWriter, r *http.Request, rt *route) (release func(), ok bool) {
	pool := rt.slots()
	watch := pool == watchSlots
	rc := http.NewResponseController(w)
	now := time.Now()
	if !watch {
		// Set on every request: a deadline left on a kept-alive
		// connection by the one before would fail this one's answer.
		_ = rc.SetWriteDeadline(now.Add(s.cfg.BodyTimeout + s.cfg.RequestTimeout + s.cfg.WriteTimeout))
	}
	if pool == noSlots {
		return func() {}, true
	}
	if r.ContentLength > s.cfg.MaxRequestBytes {
		refuseBody(w, r.ContentLength, s.cfg.MaxRequestBytes)
		return nil, false
	}
	slots, busy := s.limits.requests, ErrTooManyRequests
	if watch {
		slots, busy = s.limits.watchers, ErrTooManyWatchers
	}
	select {
	case slots <- struct{}{}:
	default:
		writeError(w, busy)
		return nil, false
	}
	// A keepalive stream's body is its client's renewals, which come for
	// as long as it holds the lease.
	if !watch && r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		_ = rc.SetReadDeadline(now.Add(s.cfg.BodyTimeout))
		r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
	}
	return func() { <-slots }, true
}

// refuseBody answers 413 to a request whose declared length is over limit,
// before reading any of it: a client that sent Expect: 100-continue gets no
// 100 Continue, and the connection is closed rather than drained.
func refuseBody(w http.ResponseWriter, length, limit int64) {
	w.Header().Set("Connection", "close")
	writeError(w, &Error{Status: http.StatusRequestEntityTooLarge, Code: "request_too_large",
		Message: fmt.Sprintf("the request body is %d bytes; the limit is %d", length, limit)})
}

// deadlineBody lifts the body's read deadline once the body has been read:
// net/http then reads the connection in the background to notice a client
// that goes away, and a deadline passing there would cancel the request.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
