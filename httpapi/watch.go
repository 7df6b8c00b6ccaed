package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/raftkv/raftkv/kvstore"
)

// serveWatch serves GET /v1/watch/{key} as a stream of Server-Sent Events.
// It returns an error only before the stream starts; after that, the stream
// ends with an error event or when the client goes away. The request timeout
// does not apply: a watch lasts as long as the client wants.
func (s *Server) serveWatch(w http.ResponseWriter, r *http.Request, rawKey string) error {
	key, err := unescapeKey(rawKey)
	if err != nil {
		return err
	}
	q, err := parseQuery(r)
	if err != nil {
		return err
	}
	if err := onlyParams(q, "prefix", "from", "encoding"); err != nil {
		return err
	}
	prefix, err := boolParam(q, "prefix")
	if err != nil {
		return err
	}
	enc, err := encodingParam(q)
	if err != nil {
		return err
	}
	if key != "" || !prefix {
		if err := s.checkKey(key, "/v1/watch/{key}, or /v1/watch/?prefix=true to watch every key"); err != nil {
			return err
		}
	}
	if prefix {
		err = mayReadAll(r, []byte(key))
	} else {
		err = mayRead(r, []byte(key))
	}
	if err != nil {
		return err
	}
	from, err := watchStart(q, r.Header)
	if err != nil {
		return err
	}
	if from == 0 {
		// Start after the revision the local state is at, and say so in
		// X-Raftkv-Revision: a client that knows it can resume without a gap
		// even before the first event. Changes applied but not yet handed to
		// watchers are below from and thus not delivered twice.
		_, rev, err := s.cfg.KV.Get(r.Context(), []byte(key), true)
		if err != nil && !errors.Is(err, kvstore.ErrKeyNotFound) {
			return err
		}
		from = rev + 1
	}
	watcher, err := s.cfg.KV.Watch([]byte(key), prefix, from)
	if err != nil {
		return err
	}
	defer watcher.Close()
	s.stream(w, r, watcher, enc, from, s.watchRecheck(r, []byte(key), prefix))
	return nil
}

// watchRecheck returns what a watch stream checks after a reload of the
// auth file: that the caller's credentials still pass and it may still read
// what it watches. Without access control it returns nil.
func (s *Server) watchRecheck(r *http.Request, key []byte, prefix bool) func() error {
	id := identityOf(r)
	if id == nil {
		return nil
	}
	gen := s.cfg.Auth.Generation()
	return func() error {
		g := s.cfg.Auth.Generation()
		if g == gen {
			return nil
		}
		gen = g
		cur := s.cfg.Auth.Recheck(id)
		switch {
		case cur == nil:
			return fmt.Errorf("%s: the auth file was reloaded and no longer accepts these credentials", id)
		case prefix && !cur.CanReadAll(key), !prefix && !cur.CanRead(key):
			return fmt.Errorf("%s: the auth file was reloaded and no longer allows this watch", id)
		}
		id = cur
		return nil
	}
}

// watchStart returns the first revision a watch asks for: from=R, else the
// revision after Last-Event-ID (sent by reconnecting EventSources), else 0.
func watchStart(q url.Values, h http.Header) (uint64, error) {
	v, ok, err := param(q, "from")
	if err != nil {
		return 0, err
	}
	if ok {
		from, ok := parsePositive(v)
		if !ok {
			return 0, badRequest("invalid_revision", fmt.Sprintf("from=%q: use a positive revision", v))
		}
		return from, nil
	}
	ids := h.Values("Last-Event-ID")
	if len(ids) == 0 || (len(ids) == 1 && strings.TrimSpace(ids[0]) == "") {
		return 0, nil
	}
	id := strings.TrimSpace(ids[0])
	if len(ids) > 1 || strings.TrimLeft(id, "0123456789") != "" {
		return 0, badRequest("invalid_revision", fmt.Sprintf("Last-Event-ID %q: use the id of an event", strings.Join(ids, ", ")))
	}
	rev, err := strconv.ParseUint(id, 10, 64)
	if err != nil || rev == math.MaxUint64 {
		return 0, badRequest("invalid_revision", fmt.Sprintf("Last-Event-ID %q: use the id of an event", id))
	}
	return rev + 1, nil
}

// eventData is the JSON of one put or delete event; key and value are in
// the request's encoding. Value is a pointer so that an empty value is ""
// while deletes omit it.
type eventData struct {
	Type           string  `json:"type"`
	Key            string  `json:"key"`
	Value          *string `json:"value,omitempty"`
	CreateRevision uint64  `json:"create_revision,omitempty"`
	ModRevision    uint64  `json:"mod_revision,omitempty"`
	Version        uint64  `json:"version,omitempty"`
	Lease          uint64  `json:"lease,omitempty"`
	Revision       uint64  `json:"revision"`
}

// errorEventData is the JSON of the final error event. ResumeFrom is left
// out of a stream that cannot be resumed, as docs/API.md says: revisions
// start at 1, so 0 never names one.
type errorEventData struct {
	Error      string `json:"error"`
	Code       string `json:"code"`
	ResumeFrom uint64 `json:"resume_from,omitempty"`
}

// endEvent is the final event of a stream whose watcher ended with err.
func endEvent(err error) errorEventData {
	var we *kvstore.WatchError
	if errors.As(err, &we) {
		code, msg := watchEnd(we.Reason)
		return errorEventData{Error: msg, Code: code, ResumeFrom: we.ResumeFrom}
	}
	code, msg := watchEnd(err)
	return errorEventData{Error: msg, Code: code}
}

// stream writes the watcher's changes as events until it ends or the client
// goes away, flushing after every event. The handler's goroutine is the only
// one: the keepalive is a deadline on the wait for the next change. A stream
// lasts as long as the client wants, but each write must be taken within
// WriteTimeout: a client that stops reading loses its stream (and its
// connection) instead of holding them forever. recheck, when set, runs
// before anything is written: a watch whose caller lost the right to it
// ends with a permission_denied event, at the latest one keepalive after the
// auth file's reload. A revision with a key or value enc cannot carry ends
// the stream before its first event, with not_utf8 and that revision to
// resume from.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, watcher *kvstore.Watcher, enc keyEncoding, from uint64, recheck func() error) {
	sw := streamWriter{w: w, rc: http.NewResponseController(w), timeout: s.cfg.WriteTimeout}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	if r.ProtoMajor == 1 {
		// A stream that ends leaves no idle connection behind: clients
		// reconnect to watch again.
		h.Set("Connection", "close")
	}
	setRevision(h, from-1)
	w.WriteHeader(http.StatusOK)
	if sw.write(nil) != nil {
		return
	}
	var buf []byte
	resume := from // the revision after the last one delivered
	for {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.WatchKeepalive)
		ch, err := watcher.Next(ctx)
		cancel()
		if recheck != nil && r.Context().Err() == nil {
			if rerr := recheck(); rerr != nil {
				buf = appendErrorEvent(buf[:0], errorEventData{Error: rerr.Error(), Code: "permission_denied", ResumeFrom: resume})
				_ = sw.write(buf)
				return
			}
		}
		switch {
		case err == nil:
		case errors.As(err, new(*kvstore.WatchError)):
			buf = appendErrorEvent(buf[:0], endEvent(err))
			_ = sw.write(buf)
			return
		case r.Context().Err() != nil:
			return // the client went away; the deferred Close releases the watcher
		case errors.Is(err, context.DeadlineExceeded):
			if sw.write([]byte(": keepalive\n\n")) != nil {
				return
			}
			continue
		default:
			s.cfg.Logger.Warn("watch ended unexpectedly", zap.Error(err))
			buf = appendErrorEvent(buf[:0], endEvent(err))
			_ = sw.write(buf)
			return
		}
		events, err := encodeChange(enc, ch)
		if err != nil {
			code, msg := watchEnd(err)
			buf = appendErrorEvent(buf[:0], errorEventData{Error: msg, Code: code, ResumeFrom: ch.Revision})
			_ = sw.write(buf)
			return
		}
		for i, d := range events {
			buf = appendEvent(buf[:0], d, i == len(events)-1)
			if sw.write(buf) != nil {
				return
			}
		}
		resume = ch.Revision + 1
	}
}

// streamWriter writes and flushes a stream, each write within timeout.
type streamWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

// write writes and flushes b. The deadline is lifted after the write: over
// HTTP/2 a deadline that passes resets the stream even between writes.
func (sw streamWriter) write(b []byte) error {
	if err := sw.rc.SetWriteDeadline(time.Now().Add(sw.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if _, err := sw.w.Write(b); err != nil {
		return err
	}
	if err := sw.rc.Flush(); err != nil {
		return err
	}
	if err := sw.rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// encodeChange encodes the events of one revision, all or none: a stream
// refused for one of them ends on a revision boundary, so that resuming
// from that revision (in base64) neither repeats nor skips an event.
func encodeChange(enc keyEncoding, ch kvstore.Change) ([]eventData, error) {
	out := make([]eventData, len(ch.Events))
	for i, ev := range ch.Events {
		key, err := enc.key(ev.Key)
		if err != nil {
			return nil, err
		}
		d := eventData{Type: ev.Type.String(), Key: key, Revision: ch.Revision}
		if ev.Type == kvstore.EventPut {
			if d.Value, err = enc.value(ev.Key, ev.Item.Value); err != nil {
				return nil, err
			}
			d.CreateRevision, d.ModRevision, d.Version, d.Lease = ev.Item.CreateRevision, ev.Item.ModRevision, ev.Item.Version, ev.Item.Lease
		}
		out[i] = d
	}
	return out, nil
}

// appendEvent appends one event block. The id line comes only after the
// last event of a revision, so that Last-Event-ID never names a revision
// whose events were not all received.
func appendEvent(buf []byte, d eventData, last bool) []byte {
	buf = append(buf, "event: "...)
	buf = append(buf, d.Type...)
	buf = append(buf, "\ndata: "...)
	buf = appendJSON(buf, d)
	buf = append(buf, '\n')
	if last {
		buf = append(buf, "id: "...)
		buf = strconv.AppendUint(buf, d.Revision, 10)
		buf = append(buf, '\n')
	}
	return append(buf, '\n')
}

func appendErrorEvent(buf []byte, d errorEventData) []byte {
	buf = append(buf, "event: error\ndata: "...)
	buf = appendJSON(buf, d)
	return append(buf, "\n\n"...)
}

// appendJSON appends v as one line of JSON (encoding/json escapes newlines
// in strings, so data never spans lines). <, > and & stay as they are, as
// in writeJSON: an event stream is never taken for HTML.
func appendJSON(buf []byte, v any) []byte {
	b := bytes.NewBuffer(buf)
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	// Encode cannot fail (the event types hold strings and integers) and
	// ends with a newline, which the caller writes itself.
	_ = enc.Encode(v)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
