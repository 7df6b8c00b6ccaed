package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/internal/testcluster"
	"github.com/raftkv/raftkv/kvstore"
)

// streamTimeout bounds every watch stream a test opens, so that a missing
// event fails the test instead of hanging it.
const streamTimeout = 20 * time.Second

// sseStream is an open watch: a Server-Sent Events response read line by
// line.
type sseStream struct {
	t      *testing.T
	resp   *http.Response
	r      *bufio.Reader
	cancel context.CancelFunc
}

// openWatch opens a watch and expects 200. The stream is closed when the
// test ends, if not before.
func openWatch(t *testing.T, client *http.Client, url string, header http.Header) *sseStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", url, err)
	}
	s := &sseStream{t: t, resp: resp, r: bufio.NewReader(resp.Body), cancel: cancel}
	t.Cleanup(s.close)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s = %d %s", url, resp.StatusCode, b)
	}
	if ct, cc := resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"); ct != "text/event-stream" || cc != "no-cache" {
		t.Fatalf("GET %s: Content-Type %q, Cache-Control %q", url, ct, cc)
	}
	return s
}

func (n *node) watch(t *testing.T, path string, header http.Header) *sseStream {
	t.Helper()
	return openWatch(t, n.http, n.url+path, header)
}

func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// startRevision is the stream's X-Raftkv-Revision: it starts after it.
func (s *sseStream) startRevision() uint64 {
	s.t.Helper()
	rev, err := strconv.ParseUint(s.resp.Header.Get("X-Raftkv-Revision"), 10, 64)
	if err != nil {
		s.t.Fatalf("X-Raftkv-Revision %q: %v", s.resp.Header.Get("X-Raftkv-Revision"), err)
	}
	return rev
}

// readRaw reads exactly n bytes of the stream.
func (s *sseStream) readRaw(n int) string {
	s.t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(s.r, b); err != nil {
		s.t.Fatalf("read %d bytes of the stream: %v (got %q)", n, err, b)
	}
	return string(b)
}

// sseEvent is one event block; comment holds a comment-only block.
type sseEvent struct {
	name, data, id, comment string
}

// next reads the next block.
func (s *sseStream) next() sseEvent {
	s.t.Helper()
	var ev sseEvent
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			s.t.Fatalf("read the stream: %v (partial %q)", err, line)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			return ev
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "":
			ev.comment = value
		case "event":
			ev.name = value
		case "data":
			ev.data = value
		case "id":
			ev.id = value
		default:
			s.t.Fatalf("unexpected line %q", line)
		}
	}
}

// nextEvent reads the next event, skipping keepalives.
func (s *sseStream) nextEvent() sseEvent {
	s.t.Helper()
	for {
		if ev := s.next(); ev.comment == "" {
			return ev
		}
	}
}

// expectEnd checks that the server ended the stream.
func (s *sseStream) expectEnd() {
	s.t.Helper()
	rest, err := io.ReadAll(s.r)
	if err != nil || len(rest) != 0 {
		s.t.Fatalf("stream did not end cleanly: %v, %q left", err, rest)
	}
}

// change is what a test compares of an event.
type change struct {
	typ      string
	key      string
	revision uint64
	last     bool // carries the id line
}

type watchEvent struct {
	Type           string  `json:"type"`
	Key            []byte  `json:"key"`
	Value          *[]byte `json:"value"`
	CreateRevision uint64  `json:"create_revision"`
	ModRevision    uint64  `json:"mod_revision"`
	Version        uint64  `json:"version"`
	Revision       uint64  `json:"revision"`
}

// nextChange reads the next event as a change and checks that its parts
// agree.
func (s *sseStream) nextChange() change {
	s.t.Helper()
	ev := s.nextEvent()
	var we watchEvent
	d := json.NewDecoder(strings.NewReader(ev.data))
	d.DisallowUnknownFields()
	if err := d.Decode(&we); err != nil {
		s.t.Fatalf("event %+v: %v", ev, err)
	}
	if we.Type != ev.name || (ev.id != "" && ev.id != strconv.FormatUint(we.Revision, 10)) {
		s.t.Fatalf("event %+v disagrees with its data", ev)
	}
	if (we.Type == "put") != (we.Value != nil) {
		s.t.Fatalf("event %+v: a value goes with puts only", ev)
	}
	return change{typ: we.Type, key: string(we.Key), revision: we.Revision, last: ev.id != ""}
}

func (s *sseStream) nextChanges(n int) []change {
	s.t.Helper()
	var cs []change
	for range n {
		cs = append(cs, s.nextChange())
	}
	return cs
}

// errorEvent is the final event of a stream.
type errorEvent struct {
	Error      string `json:"error"`
	Code       string `json:"code"`
	ResumeFrom uint64 `json:"resume_from"`
}

func (s *sseStream) nextError() errorEvent {
	s.t.Helper()
	ev := s.nextEvent()
	var e errorEvent
	d := json.NewDecoder(strings.NewReader(ev.data))
	d.DisallowUnknownFields()
	if ev.name != "error" || ev.id != "" || d.Decode(&e) != nil || e.Error == "" {
		s.t.Fatalf("want a final error event, got %+v", ev)
	}
	return e
}

// putEvent and deleteEvent are the exact text of events as docs/API.md
// shows them.
func putEvent(key, value string, p putResponse, last bool) string {
	s := fmt.Sprintf("event: put\ndata: {\"type\":\"put\",\"key\":%q,\"value\":%q,\"create_revision\":%d,\"mod_revision\":%d,\"version\":%d,\"revision\":%d}\n",
		b64(key), b64(value), p.CreateRevision, p.ModRevision, p.Version, p.Revision)
	return s + idLine(p.Revision, last) + "\n"
}

func deleteEvent(key string, revision uint64, last bool) string {
	s := fmt.Sprintf("event: delete\ndata: {\"type\":\"delete\",\"key\":%q,\"revision\":%d}\n", b64(key), revision)
	return s + idLine(revision, last) + "\n"
}

func idLine(revision uint64, last bool) string {
	if !last {
		return ""
	}
	return fmt.Sprintf("id: %d\n", revision)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func (n *node) deleteV1(t *testing.T, query string) deleteResponse {
	t.Helper()
	r := n.do(t, http.MethodDelete, query, nil)
	if r.status != 200 {
		t.Fatalf("DELETE %s = %d %s", query, r.status, r.body)
	}
	var d deleteResponse
	decodeStrict(t, r, &d)
	return d
}

// TestWatchEvents checks the exact SSE framing of puts, deletes and a range
// delete (one event per key, one id per revision), the prefix filter, and
// the single-key filter.
func TestWatchEvents(t *testing.T) {
	n := startSingleNode(t)
	n.putV1(t, "before", "the watch", nil)
	all := n.watch(t, "/v1/watch/w/?prefix=true", nil)
	one := n.watch(t, "/v1/watch/w%2Fa", nil) // the key w/a
	start := all.startRevision()
	if start != n.srv.KV().Store().Revision() || one.startRevision() != start {
		t.Fatalf("streams start after %d and %d; the store is at %d", start, one.startRevision(), n.srv.KV().Store().Revision())
	}

	a1 := n.putV1(t, "w/a", "1", nil)
	n.putV1(t, "x", "not watched", nil)
	n.putV1(t, "w", "not under w/", nil)
	b := n.putV1(t, "w/b", "", nil)
	a2 := n.putV1(t, "w/a", "2", nil)
	delA := n.deleteV1(t, "/v1/kv/w/a")
	c := n.putV1(t, "w/c", "3\n", nil)
	rng := n.deleteV1(t, "/v1/kv/?prefix=w/")
	a3 := n.putV1(t, "w/a", "end", nil)
	if a1.Revision <= start || rng.Deleted != 2 {
		t.Fatalf("first write at %d after a stream start at %d; range delete %+v", a1.Revision, start, rng)
	}

	want := putEvent("w/a", "1", a1, true) +
		putEvent("w/b", "", b, true) +
		putEvent("w/a", "2", a2, true) +
		deleteEvent("w/a", delA.Revision, true) +
		putEvent("w/c", "3\n", c, true) +
		deleteEvent("w/b", rng.Revision, false) +
		deleteEvent("w/c", rng.Revision, true) +
		putEvent("w/a", "end", a3, true)
	if got := all.readRaw(len(want)); got != want {
		t.Fatalf("prefix stream:\n%s\nwant:\n%s", got, want)
	}
	wantOne := putEvent("w/a", "1", a1, true) +
		putEvent("w/a", "2", a2, true) +
		deleteEvent("w/a", delA.Revision, true) +
		putEvent("w/a", "end", a3, true)
	if got := one.readRaw(len(wantOne)); got != wantOne {
		t.Fatalf("key stream:\n%s\nwant:\n%s", got, wantOne)
	}
}

// TestWatchEncoding streams the same changes in both encodings: text events
// are the documented ones with keys and values as they are; a revision with
// a key text cannot carry ends a text stream before any of its events, with
// not_utf8 and that revision to resume from; and base64 resumes there and
// carries the binary key exactly.
func TestWatchEncoding(t *testing.T) {
	n := startSingleNode(t)
	text := n.watch(t, "/v1/watch/w/?prefix=true&encoding=text", nil)
	explicit := n.watch(t, "/v1/watch/w/?prefix=true&encoding=base64", nil)
	a := n.putV1(t, "w/a", "a && b <c>\n", nil)
	e := n.putV1(t, "w/\u00e9", "", nil)
	del := n.deleteV1(t, "/v1/kv/w/a")
	want := fmt.Sprintf("event: put\ndata: {\"type\":\"put\",\"key\":\"w/a\",\"value\":\"a && b <c>\\n\",\"create_revision\":%d,\"mod_revision\":%[1]d,\"version\":1,\"revision\":%[1]d}\nid: %[1]d\n\n", a.Revision) +
		fmt.Sprintf("event: put\ndata: {\"type\":\"put\",\"key\":\"w/\u00e9\",\"value\":\"\",\"create_revision\":%d,\"mod_revision\":%[1]d,\"version\":1,\"revision\":%[1]d}\nid: %[1]d\n\n", e.Revision) +
		fmt.Sprintf("event: delete\ndata: {\"type\":\"delete\",\"key\":\"w/a\",\"revision\":%d}\nid: %[1]d\n\n", del.Revision)
	if got := text.readRaw(len(want)); got != want {
		t.Fatalf("text stream:\n%s\nwant:\n%s", got, want)
	}
	wantB64 := putEvent("w/a", "a && b <c>\n", a, true) + putEvent("w/\u00e9", "", e, true) + deleteEvent("w/a", del.Revision, true)
	if got := explicit.readRaw(len(wantB64)); got != wantB64 {
		t.Fatalf("encoding=base64 stream:\n%s\nwant:\n%s", got, wantB64)
	}

	// A key that is not UTF-8 ends the text stream at its revision.
	bin := n.putV1(t, "w/\xff", "v", nil)
	if e := text.nextError(); e.Code != "not_utf8" || e.ResumeFrom != bin.Revision || !strings.Contains(e.Error, `key "w/\xff"`) {
		t.Fatalf("text stream ended with %+v, want not_utf8 resuming from %d", e, bin.Revision)
	}
	text.expectEnd()
	// A range delete whose second key is binary: the first key's delete
	// is not sent either, so resuming from the revision repeats nothing.
	after := n.watch(t, fmt.Sprintf("/v1/watch/w/?prefix=true&encoding=text&from=%d", bin.Revision+1), nil)
	rng := n.deleteV1(t, "/v1/kv/?prefix=w/")
	if rng.Deleted != 2 {
		t.Fatalf("range delete = %+v, want 2 deleted", rng)
	}
	if e := after.nextError(); e.Code != "not_utf8" || e.ResumeFrom != rng.Revision {
		t.Fatalf("text stream ended with %+v, want not_utf8 resuming from %d", e, rng.Revision)
	}
	after.expectEnd()
	// A binary value, on a single-key text watch.
	value := n.watch(t, "/v1/watch/w/v?encoding=text", nil)
	binValue := n.putV1(t, "w/v", "\x00\xfe", nil)
	if e := value.nextError(); e.Code != "not_utf8" || e.ResumeFrom != binValue.Revision || !strings.Contains(e.Error, `the value of key "w/v"`) {
		t.Fatalf("single-key text stream ended with %+v, want not_utf8 resuming from %d", e, binValue.Revision)
	}
	value.expectEnd()

	// base64, the default, resumes where text stopped and carries it all.
	resumed := n.watch(t, fmt.Sprintf("/v1/watch/w/?prefix=true&from=%d", bin.Revision), nil)
	wantResumed := putEvent("w/\xff", "v", bin, true) +
		deleteEvent("w/\u00e9", rng.Revision, false) + deleteEvent("w/\xff", rng.Revision, true) +
		putEvent("w/v", "\x00\xfe", binValue, true)
	if got := resumed.readRaw(len(wantResumed)); got != wantResumed {
		t.Fatalf("resumed base64 stream:\n%s\nwant:\n%s", got, wantResumed)
	}
	if got := explicit.readRaw(len(wantResumed)); got != wantResumed {
		t.Fatalf("encoding=base64 stream after text ended:\n%s\nwant:\n%s", got, wantResumed)
	}
	waitFor(t, "the ended text streams release their watchers", func() bool { return n.srv.KV().Watchers() == 2 })
}

// TestWatchResume replays a history from every point a client can resume
// from, with from= and with Last-Event-ID, and checks for no gap and no
// duplicate.
func TestWatchResume(t *testing.T) {
	n := startSingleNode(t)
	var revs []uint64
	for i := range 4 {
		revs = append(revs, n.putV1(t, fmt.Sprintf("r/%d", i), "v", nil).Revision)
	}
	revs = append(revs, n.deleteV1(t, "/v1/kv/?prefix=r/").Revision) // four events
	n.putV1(t, "other", "v", nil)
	for i := 4; i < 6; i++ {
		revs = append(revs, n.putV1(t, fmt.Sprintf("r/%d", i), "v", nil).Revision)
	}

	full := n.watch(t, fmt.Sprintf("/v1/watch/r/?prefix=true&from=%d", revs[0]), nil)
	if got := full.startRevision(); got != revs[0]-1 {
		t.Fatalf("stream from %d starts after %d", revs[0], got)
	}
	history := full.nextChanges(10)
	full.close()
	var wantHistory []change
	for i := range 4 {
		wantHistory = append(wantHistory, change{"put", fmt.Sprintf("r/%d", i), revs[i], true})
	}
	for i := range 4 {
		wantHistory = append(wantHistory, change{"delete", fmt.Sprintf("r/%d", i), revs[4], i == 3})
	}
	wantHistory = append(wantHistory, change{"put", "r/4", revs[5], true}, change{"put", "r/5", revs[6], true})
	if !slices.Equal(history, wantHistory) {
		t.Fatalf("history:\n%v\nwant\n%v", history, wantHistory)
	}

	// Resume after every id the client saw, and after the ids a client
	// that only saw part of the range delete holds (the previous one).
	for i, ev := range history {
		if !ev.last {
			continue
		}
		rest := history[i+1:]
		if len(rest) == 0 {
			break
		}
		id := strconv.FormatUint(ev.revision, 10)
		for _, resume := range []struct {
			name   string
			path   string
			header http.Header
		}{
			{"from", "/v1/watch/r/?prefix=true&from=" + strconv.FormatUint(ev.revision+1, 10), nil},
			{"Last-Event-ID", "/v1/watch/r/?prefix=true", http.Header{"Last-Event-Id": {id}}},
			// from wins over Last-Event-ID.
			{"from and Last-Event-ID", "/v1/watch/r/?prefix=true&from=" + strconv.FormatUint(ev.revision+1, 10), http.Header{"Last-Event-Id": {"1"}}},
		} {
			s := n.watch(t, resume.path, resume.header)
			if got := s.startRevision(); got != ev.revision {
				t.Fatalf("resume with %s after %s: stream starts after %d", resume.name, id, got)
			}
			if got := s.nextChanges(len(rest)); !slices.Equal(got, rest) {
				t.Fatalf("resume with %s after %s:\n%v\nwant\n%v", resume.name, id, got, rest)
			}
			s.close()
		}
	}

	// A stream from a future revision waits for it.
	future := n.watch(t, fmt.Sprintf("/v1/watch/r/?prefix=true&from=%d", revs[6]+3), nil)
	var last putResponse
	for i := range 4 {
		last = n.putV1(t, "r/f", strconv.Itoa(i), nil)
	}
	if got := future.nextChange(); got.revision < revs[6]+3 || got.revision > last.Revision {
		t.Fatalf("stream from %d began with %+v", revs[6]+3, got)
	}
}

// TestWatchCompacted checks the 410 answer for a revision older than the
// history, and that the oldest revision it names can be watched.
func TestWatchCompacted(t *testing.T) {
	const history = 5
	n := startSingleNodeWith(t, nodeOptions{kv: kvstore.Config{WatchHistory: history}})
	var revs []uint64
	for i := range 4 * history {
		revs = append(revs, n.putV1(t, "k", strconv.Itoa(i), nil).Revision)
	}
	gone := func(path string, header http.Header) uint64 {
		t.Helper()
		r := n.doHeader(t, http.MethodGet, path, header, nil)
		if r.status != http.StatusGone {
			t.Fatalf("GET %s %v = %d %s, want 410", path, header, r.status, r.body)
		}
		var e struct {
			Error          string `json:"error"`
			Code           string `json:"code"`
			OldestRevision uint64 `json:"oldest_revision"`
		}
		decodeStrict(t, r, &e)
		if e.Code != "compacted" || e.Error == "" {
			t.Fatalf("410 body %s", r.body)
		}
		return e.OldestRevision
	}
	oldest := gone(fmt.Sprintf("/v1/watch/k?from=%d", revs[0]), nil)
	if oldest <= revs[0] || oldest > revs[len(revs)-history] {
		t.Fatalf("oldest revision %d; writes at %v with a history of %d", oldest, revs, history)
	}
	if got := gone("/v1/watch/k", http.Header{"Last-Event-Id": {strconv.FormatUint(revs[0], 10)}}); got != oldest {
		t.Fatalf("Last-Event-ID: oldest %d, from=: %d", got, oldest)
	}
	gone(fmt.Sprintf("/v1/watch/?prefix=true&from=%d", oldest-1), nil)
	if w := n.srv.KV().Watchers(); w != 0 {
		t.Fatalf("%d watchers after refused watches", w)
	}

	s := n.watch(t, fmt.Sprintf("/v1/watch/k?from=%d", oldest), nil)
	var want []change
	for _, rev := range revs {
		if rev >= oldest {
			want = append(want, change{"put", "k", rev, true})
		}
	}
	if got := s.nextChanges(len(want)); !slices.Equal(got, want) {
		t.Fatalf("from the oldest revision:\n%v\nwant\n%v", got, want)
	}
}

// smallBuffers shrinks the kernel's send buffer of every accepted
// connection, so that a client that stops reading stalls the server's
// writes after a few KiB instead of megabytes.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4 << 10)
	}
	return c, err
}

// TestWatchLagged stalls a watch client and checks that the node keeps
// accepting writes, closes the watcher, and ends its stream with a lagged
// error whose resume_from joins up with what was delivered.
func TestWatchLagged(t *testing.T) {
	n := startSingleNodeWith(t, nodeOptions{
		kv:                 kvstore.Config{WatchBuffer: 4},
		wrapClientListener: func(ln net.Listener) net.Listener { return smallBuffers{ln} },
	})
	// A client with a small receive buffer that does not read.
	stalled := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(4 << 10)
			}
			return c, err
		},
	}}
	t.Cleanup(stalled.CloseIdleConnections)
	s := openWatch(t, stalled, n.url+"/v1/watch/lag/?prefix=true", nil)
	if w := n.srv.KV().Watchers(); w != 1 {
		t.Fatalf("%d watchers", w)
	}

	// Write until the node gives up on the watcher; every write succeeds
	// meanwhile, and a few more after.
	value := strings.Repeat("x", testMaxRequest-100)
	var revs []uint64
	for i := 0; n.srv.KV().Watchers() != 0; i++ {
		if i == 5000 {
			t.Fatal("a watcher that does not read was never closed")
		}
		revs = append(revs, n.putV1(t, fmt.Sprintf("lag/%d", i), value, nil).Revision)
	}
	for i := range 5 {
		revs = append(revs, n.putV1(t, fmt.Sprintf("lag/after/%d", i), value, nil).Revision)
	}
	t.Logf("the watcher was closed after %d writes", len(revs)-5)

	// Now read: the changes before the lag, contiguous, then the end.
	var delivered []uint64
	for {
		ev := s.nextEvent()
		if ev.name == "error" {
			var e errorEvent
			if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf(`{"error":"watcher fell behind","code":"lagged","resume_from":%d}`, e.ResumeFrom); ev.data != want || ev.id != "" {
				t.Fatalf("final event %+v, want data %s", ev, want)
			}
			k := len(delivered)
			if k == len(revs) || e.ResumeFrom != revs[k] {
				t.Fatalf("delivered %d of %d revisions, then resume_from %d", k, len(revs), e.ResumeFrom)
			}
			break
		}
		rev, err := strconv.ParseUint(ev.id, 10, 64)
		if err != nil || len(delivered) >= len(revs) || rev != revs[len(delivered)] {
			t.Fatalf("event %d is %+v; writes were at %v", len(delivered), ev, revs)
		}
		delivered = append(delivered, rev)
	}
	s.expectEnd()

	// Resuming from resume_from delivers the rest.
	resumed := n.watch(t, fmt.Sprintf("/v1/watch/lag/?prefix=true&from=%d", revs[len(delivered)]), nil)
	for _, want := range revs[len(delivered):] {
		if got := resumed.nextChange(); got.revision != want {
			t.Fatalf("resumed stream: revision %d, want %d", got.revision, want)
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for !cond() {
		select {
		case <-poll.C:
		case <-deadline.C:
			t.Fatalf("%s: not within 10s", what)
		}
	}
}

// TestWatchStreamLifecycle checks keepalives on an idle stream, that the
// request timeout does not end a stream, that a client that goes away
// releases its watcher, and that a stopping node ends its streams with a
// final event.
func TestWatchStreamLifecycle(t *testing.T) {
	const requestTimeout = 500 * time.Millisecond
	n := startSingleNodeWith(t, nodeOptions{requestTimeout: requestTimeout, watchKeepalive: 20 * time.Millisecond})
	idle := n.watch(t, "/v1/watch/k", nil)
	opened := time.Now()
	for time.Since(opened) < 2*requestTimeout {
		if got := idle.readRaw(len(": keepalive\n\n")); got != ": keepalive\n\n" {
			t.Fatalf("idle stream sent %q", got)
		}
	}
	idle.close()
	waitFor(t, "the watcher of a closed stream is released", func() bool { return n.srv.KV().Watchers() == 0 })

	s := n.watch(t, "/v1/watch/k", nil)
	p := n.putV1(t, "k", "v", nil)
	if got := s.nextChange(); got != (change{"put", "k", p.Revision, true}) {
		t.Fatalf("got %+v", got)
	}
	if err := n.srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if e := s.nextError(); e.Code != "stopping" || e.ResumeFrom != p.Revision+1 {
		t.Fatalf("final event %+v, want stopping with resume_from %d", e, p.Revision+1)
	}
	s.expectEnd()
}

// TestWatchOnFollower watches through a follower of a three-node cluster
// while the leader takes the writes.
func TestWatchOnFollower(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	leader := c.WaitLeader()
	follower := leader%3 + 1
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	t.Cleanup(client.CloseIdleConnections)
	s := openWatch(t, client, c.ClientURL(follower)+"/v1/watch/f/?prefix=true", nil)

	var want []change
	for i := range 20 {
		key := fmt.Sprintf("f/%02d", i)
		req, err := http.NewRequest(http.MethodPut, c.ClientURL(leader)+kvPath(key), bytes.NewReader([]byte("v")))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p putResponse
		err = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil {
			t.Fatalf("PUT %s via the leader = %d: %v", key, resp.StatusCode, err)
		}
		want = append(want, change{"put", key, p.Revision, true})
	}
	if got := s.nextChanges(len(want)); !slices.Equal(got, want) {
		t.Fatalf("follower stream:\n%v\nwant\n%v", got, want)
	}
}
