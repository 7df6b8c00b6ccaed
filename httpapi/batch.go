package httpapi

import (
	"bytes"
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/raftkv/raftkv/wire"
)

// serveBatch serves POST /v1/batch (wire/batch.go, docs/API.md "Batches"):
// several key requests in one body, each dispatched through the route table
// as if it had come alone, all at once, with the batch's credentials. Each
// takes a request slot, is counted in the metrics under its own route, and
// gets its own answer; the answers go back together, in order, in one
// response. Profiles showed net/http's per-request work (parsing, a read
// and a write system call on each side) to be most of a node's CPU under
// small requests: a batch pays it once.
func (s *Server) serveBatch(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := noParams(r); err != nil {
		return err
	}
	if ct := r.Header.Get("Content-Type"); ct != wire.BatchContentType {
		return &Error{Status: http.StatusUnsupportedMediaType, Code: "invalid_batch",
			Message: fmt.Sprintf("a batch's Content-Type is %s, not %q", wire.BatchContentType, ct)}
	}
	body, err := readBody(w, r, s.cfg.MaxRequestBytes)
	if err != nil {
		return err
	}
	reqs, err := wire.DecodeBatchRequests(body)
	if err != nil {
		return badRequest("invalid_batch", err.Error())
	}
	answers := make([]wire.BatchAnswer, len(reqs))
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Go(func() { answers[i] = s.serveInBatch(r, &reqs[i]) })
	}
	wg.Wait()
	size := 16
	for _, a := range answers {
		size += len(a.Body) + 256 // the status and headers, generously
	}
	out := wire.AppendBatchAnswers(make([]byte, 0, size), answers)
	h := w.Header()
	h.Set("Content-Type", wire.BatchContentType)
	h.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return nil
}

// batchable reports whether rt's requests may come in a batch: the single
// key requests, which every client sends most and which need no more than
// any identified caller's access (the handler checks the key).
func (rt *route) batchable(method string) bool {
	return rt.label == routeV1KV && rt.accessOf(method) == identified
}

// batchHeaders are the request headers a request in a batch may carry: its
// conditions and its body's type. Credentials come with the batch, once.
var batchHeaders = map[string]bool{"If-Match": true, "If-None-Match": true, "Content-Type": true}

// serveInBatch serves one request of a batch that came as outer.
func (s *Server) serveInBatch(outer *http.Request, br *wire.BatchRequest) (a wire.BatchAnswer) {
	rec := &answerRecorder{header: http.Header{}}
	var w http.ResponseWriter = rec
	// A handler's panic on net/http's goroutine is recovered there; this
	// goroutine is the batch's own, so it recovers here and answers 500
	// rather than take the node down.
	defer func() {
		if p := recover(); p != nil {
			s.cfg.Logger.Error("panic serving a request in a batch", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			rec = &answerRecorder{header: http.Header{}}
			writeError(rec, fmt.Errorf("internal error"))
			a = rec.answer()
		}
	}()
	sub, rt, rest, err := s.batchedRequest(outer, br)
	if err != nil {
		writeError(w, err)
		return rec.answer()
	}
	t := s.metrics.track(w, sub, rt.label)
	defer t.done()
	w = t
	select {
	case s.limits.requests <- struct{}{}:
		defer func() { <-s.limits.requests }()
	default:
		writeError(w, ErrTooManyRequests)
		return rec.answer()
	}
	if err := rt.serve(s, w, sub, rest); err != nil {
		writeError(w, err)
	}
	return rec.answer()
}

// batchedRequest makes br an *http.Request on outer's context, which holds
// the caller's identity, and finds its route.
func (s *Server) batchedRequest(outer *http.Request, br *wire.BatchRequest) (*http.Request, *route, string, error) {
	if !strings.HasPrefix(br.Target, "/") {
		return nil, nil, "", badRequest("invalid_batch", fmt.Sprintf("target %q: it is a path from /", br.Target))
	}
	for name := range br.Header {
		if !batchHeaders[name] {
			return nil, nil, "", badRequest("invalid_batch", fmt.Sprintf("header %s: a request in a batch carries only If-Match, If-None-Match and Content-Type; credentials come with the batch", name))
		}
	}
	u, err := url.ParseRequestURI(br.Target)
	if err != nil {
		return nil, nil, "", badRequest("invalid_batch", fmt.Sprintf("target %q: %v", br.Target, err))
	}
	sub, err := http.NewRequestWithContext(outer.Context(), br.Method, "/", bytes.NewReader(br.Body))
	if err != nil {
		return nil, nil, "", badRequest("invalid_batch", fmt.Sprintf("method %q: %v", br.Method, err))
	}
	sub.URL, sub.RequestURI = u, br.Target
	sub.Header, sub.Host, sub.RemoteAddr = br.Header, outer.Host, outer.RemoteAddr
	rt, rest, unmatched := s.lookup(sub, strings.TrimPrefix(u.EscapedPath(), "/"))
	if unmatched != nil || !rt.batchable(sub.Method) {
		return nil, nil, "", badRequest("not_batchable", fmt.Sprintf("%s %s cannot be batched: a batch carries GET, HEAD, PUT and DELETE of /v1/kv/{key}", br.Method, u.EscapedPath()))
	}
	return sub, rt, rest, nil
}

// answerRecorder is the ResponseWriter of a request in a batch.
type answerRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (a *answerRecorder) Header() http.Header { return a.header }

func (a *answerRecorder) WriteHeader(code int) {
	if a.status == 0 && code >= 200 {
		a.status = code
	}
}

func (a *answerRecorder) Write(p []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	return a.body.Write(p)
}

// answer is what was written. Connection headers belong to the batch's
// connection, not to one answer in it.
func (a *answerRecorder) answer() wire.BatchAnswer {
	a.header.Del("Connection")
	return wire.BatchAnswer{Status: cmp.Or(a.status, http.StatusOK), Header: a.header, Body: a.body.Bytes()}
}
