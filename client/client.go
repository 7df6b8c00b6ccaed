// Package client is a Go client for the versioned HTTP API (/v1) of a raftkv
// cluster: see docs/API.md for the contract it speaks. A Client is safe for
// concurrent use; its own HTTP client keeps up to 256 connections per
// endpoint open between requests, so requests in flight at once each reuse
// a connection instead of opening one.
//
// # Endpoints and retries
//
// A Client knows several endpoints (the client URLs of the cluster's nodes,
// http:// or https://; WithTLS sets the CAs and the client certificate for
// https) and sends each request to one of them, starting with the last one
// that answered. It moves on to the next endpoint, round robin, only when that
// cannot change the outcome of the request:
//
//   - the request never reached a server (the connection could not be
//     made: refused, unreachable, DNS or TLS failure, such as a server
//     certificate the client does not trust or a client certificate the
//     server requires and did not get);
//   - the server answered 503: the request was not applied;
//   - for reads and watches, which change nothing, also any connection
//     failure and a 504.
//
// After every endpoint was tried once, the client waits (the server's
// Retry-After, or a short growing backoff) before the next round; it gives up
// after WithMaxAttempts attempts in all (default: three rounds), when the
// context ends, or when a wait would outlast the context's deadline, and then
// returns the last answer of a server (a 503 says why the cluster could not
// serve) or, when no server answered, the last connection error. A write whose outcome is unknown (a 504, or a
// connection that broke, or a context that ended, after the request was
// sent) is never retried: it is returned as an error matching
// ErrOutcomeUnknown, for the caller to decide.
//
// # Batches
//
// Gets, puts and deletes of single keys sent to one endpoint while it is
// busy go together in one POST /v1/batch, each answered as if it had come
// alone; a request sent to an idle endpoint goes alone. Batching changes no
// outcome and no retry rule; WithoutBatching turns it off. See batch.go and
// docs/API.md.
//
// # Errors
//
// Error responses are *APIError values (a 412 is a *PreconditionFailedError,
// a 410 a *CompactedError, returned only once every endpoint answered 410:
// each member keeps its own watch history) that also match ErrNotFound, ErrUnavailable,
// ErrOutcomeUnknown, ErrUnauthenticated (401) or ErrPermissionDenied (403)
// with errors.Is. A 401 or 403 is not retried on another endpoint: every
// member checks credentials against the same auth file. A request that got no answer fails with
// an *EndpointError: the endpoint and the transport's error (net/http's
// *url.Error is unwrapped, so its method and URL do not repeat the caller's
// message). See errors.go.
//
// # Credentials
//
// A cluster with access control on (docs/SECURITY.md) needs a user's name
// and password (WithBasicAuth) or a token (WithToken) on every request.
//
// # Keys
//
// Keys and values are byte slices and may hold any bytes. Keys are
// percent-encoded into the URL path byte by byte, so '%', '?', '#', spaces
// and bytes that are not UTF-8 all round-trip.
package client

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/raftkv/raftkv/wire"
)

// Defaults of the options.
const (
	// DefaultDialTimeout bounds connecting to one endpoint, so that a dead
	// host does not use up the whole deadline before the next is tried.
	DefaultDialTimeout = 2 * time.Second
	// DefaultWatchIdleTimeout is three of the server's 10 s keepalives: a
	// watch stream silent for that long is taken as dead and resumed.
	DefaultWatchIdleTimeout = 30 * time.Second

	// roundsPerRequest is the default number of times each endpoint is
	// tried for one request.
	roundsPerRequest = 3
	// maxIdleConnsPerEndpoint is how many connections to one endpoint the
	// client's own HTTP client keeps open between requests: as many as
	// requests a server serves at once by default (--max-concurrent-requests).
	maxIdleConnsPerEndpoint = 256
	// firstBackoff and maxBackoff bound the pause between rounds when the
	// server gave no Retry-After; maxRetryAfter caps the one it gave.
	firstBackoff  = 100 * time.Millisecond
	maxBackoff    = time.Second
	maxRetryAfter = 5 * time.Second
	// maxErrorBody bounds how much of an error response is read.
	maxErrorBody = 64 << 10
)

// Client talks to a raftkv cluster. It is safe for concurrent use.
type Client struct {
	endpoints        []string
	http             *http.Client
	ownHTTP          bool // the client made http and closes its connections
	tls              *tls.Config
	maxAttempts      int
	watchIdleTimeout time.Duration
	// authorization is the Authorization header of every request.
	authorization string
	// preferred is the index of the endpoint that answered last: requests
	// start there.
	preferred atomic.Int64
	// reads and writes gather each endpoint's batchable requests
	// (batch.go); nil with WithoutBatching.
	reads, writes             []*batcher
	noBatching                bool
	readFlights, writeFlights int
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the client send its requests with hc instead of its
// own. The caller then owns hc's connections: Close leaves them alone. hc
// should not follow redirects and should have no overall Timeout (watches
// stream for as long as their context lives); contexts bound requests.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.http, c.ownHTTP = hc, false }
}

// WithTLS makes the client's own HTTP client use cfg for https endpoints:
// the CAs that verify the servers (RootCAs; nil means the system's) and a
// client certificate for servers that require one (Certificates). Without
// it, https endpoints are verified against the system's CAs. It cannot be
// combined with WithHTTPClient: configure that client's transport instead.
func WithTLS(cfg *tls.Config) Option {
	return func(c *Client) { c.tls = cfg }
}

// WithMaxAttempts bounds how many times one request is sent, over all
// endpoints (default: three per endpoint). A value below 1 means 1.
func WithMaxAttempts(n int) Option {
	return func(c *Client) { c.maxAttempts = max(n, 1) }
}

// WithWatchIdleTimeout sets how long a watch stream may stay silent (no
// event, no keepalive) before the watcher takes it as dead and resumes on
// another connection (default DefaultWatchIdleTimeout).
func WithWatchIdleTimeout(d time.Duration) Option {
	return func(c *Client) { c.watchIdleTimeout = d }
}

// WithBasicAuth sends every request with a user's name and password (HTTP
// Basic auth), for a cluster with access control on. Use it over https: the
// password is only encoded, not encrypted.
func WithBasicAuth(user, password string) Option {
	return func(c *Client) {
		r := http.Request{Header: http.Header{}}
		r.SetBasicAuth(user, password)
		c.authorization = r.Header.Get("Authorization")
	}
}

// WithToken sends every request with a token (Authorization: Bearer), for a
// cluster with access control on.
func WithToken(token string) Option {
	return func(c *Client) { c.authorization = "Bearer " + token }
}

// New returns a client for the cluster reachable at endpoints, the nodes'
// client URLs (http://host:port, or https, optionally with a path prefix).
func New(endpoints []string, opts ...Option) (*Client, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("no endpoints")
	}
	c := &Client{
		maxAttempts:      roundsPerRequest * len(endpoints),
		watchIdleTimeout: DefaultWatchIdleTimeout,
		readFlights:      readFlights,
		writeFlights:     writeFlights,
	}
	for _, e := range endpoints {
		u, err := normalizeEndpoint(e)
		if err != nil {
			return nil, err
		}
		c.endpoints = append(c.endpoints, u)
	}
	for _, o := range opts {
		o(c)
	}
	if c.http != nil && c.tls != nil {
		return nil, errors.New("WithTLS and WithHTTPClient: set the TLS config on the HTTP client's transport instead")
	}
	if c.http == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{Timeout: DefaultDialTimeout, KeepAlive: 30 * time.Second}).DialContext
		tr.TLSClientConfig = c.tls.Clone() // nil stays nil: the system's CAs
		// net/http keeps two idle connections per host by default: a
		// client with more requests in flight than that would close and
		// open a connection for nearly every request.
		tr.MaxIdleConnsPerHost = maxIdleConnsPerEndpoint
		c.http = &http.Client{
			Transport: tr,
			// A redirect would be a server or proxy rewriting the key.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		c.ownHTTP = true
	}
	if !c.noBatching {
		for _, e := range c.endpoints {
			c.reads = append(c.reads, &batcher{c: c, endpoint: e, maxFlights: c.readFlights})
			c.writes = append(c.writes, &batcher{c: c, endpoint: e, maxFlights: c.writeFlights})
		}
	}
	return c, nil
}

// Endpoints returns the client's endpoints, normalized.
func (c *Client) Endpoints() []string { return append([]string(nil), c.endpoints...) }

// Close releases the idle connections of the client's own HTTP client. It
// does not stop watchers: close those first.
func (c *Client) Close() error {
	if c.ownHTTP {
		c.http.CloseIdleConnections()
	}
	return nil
}

// request is one API call, sent to one endpoint after another as needed.
type request struct {
	method string
	path   string // escaped, from /v1/
	query  url.Values
	header http.Header
	body   []byte
	// idempotent requests change nothing and may be sent again after any
	// failure.
	idempotent bool
	// batchable requests may go in a batch (batch.go): the single-key
	// gets, puts and deletes of /v1/kv/{key}.
	batchable bool
}

// do sends r until an endpoint answers with a 2xx status, which it returns
// with the unread body and the endpoint's index, or until the retry policy
// of the package comment gives up. Every other answer becomes an error.
func (c *Client) do(ctx context.Context, r *request) (*http.Response, int, error) {
	n := len(c.endpoints)
	first := int(c.preferred.Load())
	// The client gives up (giveUp) with the last answer of a server, which
	// says why the cluster could not serve (503 no_leader), over the last
	// failed connection (lastErr), which says only that one node is down.
	var lastErr, lastAnswer error
	// A 410 compacted is one member's answer, not the cluster's: each
	// member keeps its own watch history (one restarted keeps only what
	// came after its snapshot), so the others are asked before it is
	// returned, the one naming the oldest revision still available.
	var compacted *CompactedError
	var gone []bool // endpoints that answered 410 compacted
	giveUp := func() error {
		if compacted != nil {
			return compacted
		}
		return cmp.Or(lastAnswer, lastErr)
	}
	var retryAfter time.Duration
	for attempt := range c.maxAttempts {
		if attempt > 0 && attempt%n == 0 {
			if err := pause(ctx, backoff(attempt/n, retryAfter)); err != nil {
				if ctx.Err() != nil {
					return nil, 0, fmt.Errorf("%w; last error: %w", ctx.Err(), giveUp())
				}
				return nil, 0, giveUp()
			}
			retryAfter = 0
		}
		i := (first + attempt) % n
		if gone != nil && gone[i] {
			continue
		}
		resp, sent, err := c.send(ctx, i, r)
		if err != nil {
			switch {
			case sent && !r.idempotent:
				return nil, 0, fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
			case ctx.Err() != nil && giveUp() != nil:
				return nil, 0, fmt.Errorf("%w; last error: %w", err, giveUp())
			case ctx.Err() != nil:
				return nil, 0, err
			}
			lastErr = fmt.Errorf("%w: %w", ErrUnavailable, err)
			continue
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			c.preferred.Store(int64(i))
			return resp, i, nil
		}
		apiErr := readError(resp)
		var ce *CompactedError
		if errors.As(apiErr, &ce) {
			if compacted == nil || ce.OldestRevision < compacted.OldestRevision {
				compacted = ce
			}
			if gone == nil {
				gone = make([]bool, n)
			}
			gone[i] = true
			if !slices.Contains(gone, false) {
				return nil, 0, compacted
			}
			continue
		}
		if resp.StatusCode == http.StatusServiceUnavailable ||
			(r.idempotent && resp.StatusCode == http.StatusGatewayTimeout) {
			lastAnswer = apiErr
			retryAfter = max(retryAfter, parseRetryAfter(resp.Header.Get("Retry-After")))
			continue
		}
		return nil, 0, apiErr
	}
	return nil, 0, giveUp()
}

// send sends r to endpoint i, in a batch when it can go in one. sent
// reports whether a failed request may have reached the server.
func (c *Client) send(ctx context.Context, i int, r *request) (resp *http.Response, sent bool, err error) {
	switch {
	case !r.batchable || c.reads == nil:
	case r.idempotent:
		return c.reads[i].send(ctx, r)
	default:
		return c.writes[i].send(ctx, r)
	}
	return c.sendOne(ctx, c.endpoints[i], r)
}

// sendOne sends r on its own to one endpoint. sent reports whether a failed
// request may have reached the server: it did not if no connection was ever
// obtained.
func (c *Client) sendOne(ctx context.Context, endpoint string, r *request) (resp *http.Response, sent bool, err error) {
	u := endpoint + r.path
	if q := r.query.Encode(); q != "" {
		u += "?" + q
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	var gotConn atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) },
	})
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, false, err
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if c.authorization != "" {
		req.Header.Set("Authorization", c.authorization)
	}
	resp, err = c.http.Do(req)
	if err != nil {
		sent = gotConn.Load() && !neverRead(err)
		// net/http says `Get "http://host/v1/kv/k?x=y": dial tcp ...`: the
		// endpoint is what a user can act on, the method and path are
		// already in the caller's message.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, sent, &EndpointError{Endpoint: endpoint, Err: err}
	}
	return resp, true, nil
}

// neverRead reports whether err means the server never read the request
// even if a connection was obtained: connecting failed, or the server's TLS
// layer refused the client's certificate. With TLS 1.3 the client finishes
// its handshake first, so a missing or rejected client certificate shows
// only after the request was written ("remote error: tls: certificate
// required"), but the server refused it before reading anything. Other
// alerts (a corrupt record, say) can come after the server read the request.
func neverRead(err error) bool {
	var op *net.OpError
	if !errors.As(err, &op) {
		return false
	}
	return op.Op == "dial" || (op.Op == "remote error" && op.Err != nil && slices.Contains(certificateAlerts, op.Err.Error()))
}

// certificateAlerts are the alerts, as crypto/tls spells them, with which a
// server refuses a client certificate during the handshake.
var certificateAlerts = []string{
	"tls: certificate required",
	"tls: bad certificate",
	"tls: unsupported certificate",
	"tls: revoked certificate",
	"tls: expired certificate",
	"tls: unknown certificate",
	"tls: unknown certificate authority",
	"tls: access denied",
	"tls: handshake failure",
}

// backoff is the pause before round (from 1) of a request.
func backoff(round int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, maxRetryAfter)
	}
	return min(firstBackoff<<(round-1), maxBackoff)
}

// pause waits d, or fails at once if ctx ends first or would end during it.
func pause(ctx context.Context, d time.Duration) error {
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
		return context.DeadlineExceeded
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func parseRetryAfter(v string) time.Duration {
	secs, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || secs < 0 {
		return 0
	}
	return time.Duration(secs) * time.Second
}

// readError turns an error response into an *APIError (or a more specific
// type) and closes its body.
func readError(resp *http.Response) error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	var body wire.Error
	apiErr := APIError{Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
	if json.Unmarshal(b, &body) == nil && body.Code != "" {
		apiErr.Code, apiErr.Message = body.Code, body.Error
	}
	switch resp.StatusCode {
	case http.StatusPreconditionFailed:
		rev, _ := parseETag(resp.Header.Get("ETag"))
		return &PreconditionFailedError{APIError: apiErr, ModRevision: rev}
	case http.StatusGone:
		if apiErr.Code == "compacted" {
			return &CompactedError{APIError: apiErr, OldestRevision: body.OldestRevision}
		}
	}
	return &apiErr
}

// parseETag reads a revision from an ETag, quoted or not.
func parseETag(v string) (uint64, bool) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
	v = strings.Trim(v, `"`)
	rev, err := strconv.ParseUint(v, 10, 64)
	return rev, err == nil
}

// headerUint reads a revision-like header; absent or malformed is 0.
func headerUint(h http.Header, name string) uint64 {
	v, _ := strconv.ParseUint(h.Get(name), 10, 64)
	return v
}

// decodeJSON decodes a success response's JSON body into v and closes it.
func decodeJSON(resp *http.Response, v any) error {
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}
