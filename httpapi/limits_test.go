package httpapi_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/httpapi"
)

// limitWait bounds the waits of these tests for a limit to take effect.
const limitWait = 15 * time.Second

// rawConn opens a connection to n's client port and sends req as is.
func rawConn(t *testing.T, n *node, req string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(n.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return c
}

// holdSlot sends a PUT whose body never finishes and returns once the node
// has admitted it: a node answers Expect: 100-continue only when the handler
// starts reading the body, after the request took its slot. Waiting for that,
// rather than polling for busy answers, keeps the test's own requests from
// taking a slot first and the slow body being refused in its place.
func holdSlot(t *testing.T, n *node) net.Conn {
	t.Helper()
	c := rawConn(t, n, "PUT /v1/kv/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n")
	const cont = "HTTP/1.1 100 Continue\r\n\r\n"
	buf := make([]byte, len(cont))
	if err := c.SetReadDeadline(time.Now().Add(limitWait)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != cont {
		t.Fatalf("the slow body was not admitted: got %q, %v", buf, err)
	}
	if _, err := io.WriteString(c, "abc"); err != nil {
		t.Fatal(err)
	}
	return c
}

// readAnswer reads one response off c, within limitWait.
func readAnswer(t *testing.T, c net.Conn) (*http.Response, []byte) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(limitWait)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// wantBusy checks a 503 busy answer: JSON error body and Retry-After.
func wantBusy(t *testing.T, r response) {
	t.Helper()
	var e struct{ Error, Code string }
	if r.status != http.StatusServiceUnavailable || json.Unmarshal(r.body, &e) != nil || e.Code != "busy" || e.Error == "" {
		t.Fatalf("got %d %s, want 503 busy", r.status, r.body)
	}
	if r.header.Get("Retry-After") == "" {
		t.Fatal("503 busy without Retry-After")
	}
}

// TestBusyBeyondMaxConcurrentRequests: requests beyond the cap are answered
// 503 busy at once; the probes are served anyway; requests that hold their
// slot with a body that never arrives lose it after the body timeout (408),
// and then writes go through again.
func TestBusyBeyondMaxConcurrentRequests(t *testing.T) {
	n := startSingleNodeWith(t, nodeOptions{limits: func(c *httpapi.Config) {
		c.MaxConcurrentRequests = 2
		// Long enough that the requests below come while both slow bodies
		// still hold their slots, even on a loaded machine.
		c.BodyTimeout = 3 * time.Second
	}})
	slow := []net.Conn{holdSlot(t, n), holdSlot(t, n)}
	wantBusy(t, n.do(t, http.MethodPut, "/v1/kv/k", []byte("v")))
	wantBusy(t, n.do(t, http.MethodGet, "/v1/kv/k", nil))
	if r := n.do(t, http.MethodGet, "/livez", nil); r.status != http.StatusOK {
		t.Fatalf("/livez at the cap = %d %s", r.status, r.body)
	}
	for _, c := range slow {
		resp, body := readAnswer(t, c)
		if resp.StatusCode != http.StatusRequestTimeout || !bytes.Contains(body, []byte(`"code":"body_timeout"`)) {
			t.Fatalf("slow body: %d %s, want 408 body_timeout", resp.StatusCode, body)
		}
	}
	n.putV1(t, "k", "v", nil)
}

// TestBusyBeyondMaxWatchers: a watch beyond --max-watchers is answered 503
// busy; once a watch ends, a new one is accepted. Watches do not count
// against the request cap.
func TestBusyBeyondMaxWatchers(t *testing.T) {
	n := startSingleNodeWith(t, nodeOptions{limits: func(c *httpapi.Config) {
		c.MaxWatchers = 1
		c.MaxConcurrentRequests = 1
	}})
	first := n.watch(t, "/v1/watch/k", nil)
	wantBusy(t, n.do(t, http.MethodGet, "/v1/watch/k", nil))
	n.putV1(t, "k", "v", nil) // the request cap is free
	first.close()
	waitFor(t, "accepting a watch", func() bool {
		c := rawConn(t, n, "GET /v1/watch/k HTTP/1.1\r\nHost: x\r\n\r\n")
		defer c.Close()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		return err == nil && resp.StatusCode == http.StatusOK
	})
}

// TestWatcherThatStopsReadingIsDropped: a watcher whose client stops reading
// loses its stream and its connection within the write timeout, instead of
// holding a goroutine and a file until the client leaves.
func TestWatcherThatStopsReadingIsDropped(t *testing.T) {
	const valueBytes = 128 << 10
	// The watcher's buffer outlasts the socket buffers, so that it is the
	// blocked write, not the lag, that ends the stream.
	n := startSingleNodeWith(t, nodeOptions{
		limits: func(c *httpapi.Config) {
			c.MaxRequestBytes = valueBytes
			c.WriteTimeout = 200 * time.Millisecond
		},
	})
	n.putV1(t, "k", "warm-up", nil)
	before := n.srv.ClientConnections()
	c, err := net.Dial("tcp", strings.TrimPrefix(n.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
	if _, err := io.WriteString(c, "GET /v1/watch/k HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "watching", func() bool { return n.srv.KV().Watchers() == 1 })
	value := strings.Repeat("v", valueBytes)
	// More than the socket buffers on both sides can hold (a few MiB).
	for range 200 {
		n.putV1(t, "k", value, nil)
		if n.srv.ClientConnections() == before {
			break
		}
	}
	waitFor(t, "dropped", func() bool { return n.srv.ClientConnections() == before })
	// The handler closes its watcher as it returns, a moment after the
	// connection is gone.
	waitFor(t, "the watcher closed", func() bool { return n.srv.KV().Watchers() == 0 })
}

// TestDeclaredLengthOverLimit: a body declared larger than the limit is
// refused with 413 before it is read: no 100 Continue, no waiting for a body
// that may never come, and the connection is closed.
func TestDeclaredLengthOverLimit(t *testing.T) {
	n := startSingleNode(t)
	const huge = "99999999999"
	for _, tc := range []struct{ name, method, path, length, expect string }{
		{"v1", "PUT", "/v1/kv/k", huge, ""},
		{"v1 expecting 100-continue", "PUT", "/v1/kv/k", huge, "Expect: 100-continue\r\n"},
		{"root", "PUT", "/k", huge, "Expect: 100-continue\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rawConn(t, n, fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %s\r\n%s\r\n", tc.method, tc.path, tc.length, tc.expect))
			resp, body := readAnswer(t, c)
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !bytes.Contains(body, []byte(`"code":"request_too_large"`)) {
				t.Fatalf("got %d %s, want 413 request_too_large", resp.StatusCode, body)
			}
			if _, err := c.Read(make([]byte, 1)); err == nil {
				t.Fatal("the connection stays open after the 413")
			}
		})
	}
}

// TestIdleConnectionsMakeRoom: at the connection cap, a new client is served
// and the longest-idle connections are closed to make room; the count never
// exceeds the cap.
func TestIdleConnectionsMakeRoom(t *testing.T) {
	const maxConns = 8
	n := startSingleNodeWith(t, nodeOptions{maxConnections: maxConns})
	var idle []net.Conn
	for range 3 * maxConns {
		c := rawConn(t, n, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, _ := readAnswer(t, c); resp.StatusCode != http.StatusOK {
			t.Fatalf("/livez = %d", resp.StatusCode)
		}
		idle = append(idle, c)
		if got := n.srv.ClientConnections(); got > maxConns {
			t.Fatalf("%d open connections, cap %d", got, maxConns)
		}
	}
	n.putV1(t, "k", "v", nil)
	// The oldest went first.
	if err := idle[0].SetReadDeadline(time.Now().Add(limitWait)); err != nil {
		t.Fatal(err)
	}
	if _, err := idle[0].Read(make([]byte, 1)); err == nil {
		t.Fatal("the longest-idle connection is still open")
	}
}

// TestStrangersHoldNoSlots checks that with access control on, requests
// without valid credentials are answered 401 before they take a request
// slot or their body is read: slow bodies from strangers cannot starve the
// writers who have credentials.
func TestStrangersHoldNoSlots(t *testing.T) {
	store := testAuthStore(t)
	n := startSingleNodeWith(t, nodeOptions{limits: func(c *httpapi.Config) {
		c.MaxConcurrentRequests = 2
		c.BodyTimeout = time.Minute // far longer than the test: the 401 must not wait for it
		c.Auth = store
	}})
	var slow []net.Conn
	for range 4 {
		slow = append(slow, rawConn(t, n, "PUT /v1/kv/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"))
	}
	for _, c := range slow {
		resp, body := readAnswer(t, c)
		if resp.StatusCode != http.StatusUnauthorized || !bytes.Contains(body, []byte(`"code":"auth_required"`)) {
			t.Fatalf("slow body without credentials: %d %s, want 401 auth_required", resp.StatusCode, body)
		}
	}
	h := http.Header{"Authorization": {"Basic " + basicCredentials("root", "root-pw")}}
	for i := range 4 {
		if r := n.doHeader(t, http.MethodPut, fmt.Sprintf("/v1/kv/k%d", i), h, []byte("v")); r.status != http.StatusOK {
			t.Fatalf("a write with credentials beside strangers' slow bodies: %d %s", r.status, r.body)
		}
	}
}
