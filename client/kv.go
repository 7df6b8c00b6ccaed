package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
)

// Consistency selects how a read is served; the zero value is the server's
// default, linearizable.
type Consistency string

// The read consistencies of the API.
const (
	// Linearizable reads never miss a write acknowledged before they began.
	Linearizable Consistency = "linearizable"
	// Serializable reads are served from the node's local state: faster and
	// available without a leader, but possibly stale.
	Serializable Consistency = "serializable"
)

// Condition is a precondition on a key, checked by the state machine
// atomically with a write. The zero value is no condition.
type Condition struct {
	header, value string
}

// IfModRevision holds when the key's mod revision is rev (If-Match). As in
// etcd, revision 0 means the key does not exist, so IfModRevision(0) is
// IfNotExists: a revision read from a *PreconditionFailedError or a KV can
// always be fed back.
func IfModRevision(rev uint64) Condition {
	if rev == 0 {
		return IfNotExists()
	}
	return Condition{header: "If-Match", value: `"` + strconv.FormatUint(rev, 10) + `"`}
}

// IfExists holds when the key exists (If-Match: *).
func IfExists() Condition { return Condition{header: "If-Match", value: "*"} }

// IfNotExists holds when the key does not exist (If-None-Match: *): a
// create-only write.
func IfNotExists() Condition { return Condition{header: "If-None-Match", value: "*"} }

func (c Condition) apply(h http.Header) {
	if c.header != "" {
		h.Set(c.header, c.value)
	}
}

// KV is a key with its value and revisions.
type KV struct {
	Key            []byte `json:"key"`
	Value          []byte `json:"value,omitempty"`
	CreateRevision uint64 `json:"create_revision"`
	ModRevision    uint64 `json:"mod_revision"`
	Version        uint64 `json:"version"`
	// Lease is the lease the key is attached to, 0 for none.
	Lease uint64 `json:"lease,omitempty"`
	// Revision is the store revision the read was served at: Get's, or the
	// page's for a KV from ListAll (zero in Page.KVs, see Page.Revision).
	Revision uint64 `json:"-"`
}

// Result is the outcome of a Put.
type Result struct {
	// Revision is the write's own revision.
	Revision       uint64 `json:"revision"`
	CreateRevision uint64 `json:"create_revision"`
	ModRevision    uint64 `json:"mod_revision"`
	Version        uint64 `json:"version"`
	// Created is true when the write created the key.
	Created bool `json:"created"`
}

// DeleteResult is the outcome of a Delete or DeleteRange.
type DeleteResult struct {
	// Revision is the delete's revision, or the unchanged store revision
	// when a DeleteRange matched nothing.
	Revision uint64 `json:"revision"`
	Deleted  int64  `json:"deleted"`
}

// ListOptions select a page of a listing.
type ListOptions struct {
	// Limit is the page size, 1 to 10000; 0 is the server's default (1000).
	Limit int
	// Cursor continues after a previous page: its NextCursor.
	Cursor string
	// KeysOnly leaves values out.
	KeysOnly    bool
	Consistency Consistency
}

// Page is one page of a listing, consistent at its Revision.
type Page struct {
	Revision   uint64 `json:"revision"`
	KVs        []KV   `json:"kvs"`
	More       bool   `json:"more"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// PutOption is an option of Put.
type PutOption func(url.Values)

// WithLease attaches the key to a lease: it is deleted when the lease
// expires or is revoked. A put without it detaches the key from any lease.
func WithLease(id uint64) PutOption {
	return func(q url.Values) { q.Set("lease", strconv.FormatUint(id, 10)) }
}

// Put writes value under key if cond holds.
func (c *Client) Put(ctx context.Context, key, value []byte, cond Condition, opts ...PutOption) (Result, error) {
	p, err := keyPath("/v1/kv/", key)
	if err != nil {
		return Result{}, err
	}
	h := http.Header{}
	cond.apply(h)
	if value == nil {
		value = []byte{}
	}
	var q url.Values
	if len(opts) > 0 {
		q = url.Values{}
		for _, o := range opts {
			o(q)
		}
	}
	resp, _, err := c.do(ctx, &request{method: http.MethodPut, path: p, query: q, header: h, body: value, batchable: true})
	if err != nil {
		return Result{}, fmt.Errorf("put %q: %w", key, err)
	}
	var r Result
	if err := decodeJSON(resp, &r); err != nil {
		return Result{}, fmt.Errorf("put %q: %w", key, err)
	}
	return r, nil
}

// Get reads key. A missing key is an error matching ErrNotFound.
func (c *Client) Get(ctx context.Context, key []byte, consistency Consistency) (KV, error) {
	p, err := keyPath("/v1/kv/", key)
	if err != nil {
		return KV{}, err
	}
	resp, _, err := c.do(ctx, &request{method: http.MethodGet, path: p, query: consistencyQuery(consistency), idempotent: true, batchable: true})
	if err != nil {
		return KV{}, fmt.Errorf("get %q: %w", key, err)
	}
	defer resp.Body.Close()
	value, err := readAll(resp)
	if err != nil {
		return KV{}, fmt.Errorf("get %q: read value: %w", key, err)
	}
	h := resp.Header
	return KV{
		Key:            append([]byte(nil), key...),
		Value:          value,
		CreateRevision: headerUint(h, "X-Raftkv-Create-Revision"),
		ModRevision:    headerUint(h, "X-Raftkv-Mod-Revision"),
		Version:        headerUint(h, "X-Raftkv-Version"),
		Lease:          headerUint(h, "X-Raftkv-Lease"),
		Revision:       headerUint(h, "X-Raftkv-Revision"),
	}, nil
}

// Delete deletes key if cond holds. A missing key is an error matching
// ErrNotFound.
func (c *Client) Delete(ctx context.Context, key []byte, cond Condition) (DeleteResult, error) {
	p, err := keyPath("/v1/kv/", key)
	if err != nil {
		return DeleteResult{}, err
	}
	h := http.Header{}
	cond.apply(h)
	resp, _, err := c.do(ctx, &request{method: http.MethodDelete, path: p, header: h, batchable: true})
	if err != nil {
		return DeleteResult{}, fmt.Errorf("delete %q: %w", key, err)
	}
	var r DeleteResult
	if err := decodeJSON(resp, &r); err != nil {
		return DeleteResult{}, fmt.Errorf("delete %q: %w", key, err)
	}
	return r, nil
}

// DeleteRange deletes every key that starts with prefix, in one atomic
// change. An empty prefix deletes every key.
func (c *Client) DeleteRange(ctx context.Context, prefix []byte) (DeleteResult, error) {
	q := url.Values{"prefix": {string(prefix)}}
	resp, _, err := c.do(ctx, &request{method: http.MethodDelete, path: "/v1/kv/", query: q})
	if err != nil {
		return DeleteResult{}, fmt.Errorf("delete prefix %q: %w", prefix, err)
	}
	var r DeleteResult
	if err := decodeJSON(resp, &r); err != nil {
		return DeleteResult{}, fmt.Errorf("delete prefix %q: %w", prefix, err)
	}
	return r, nil
}

// List reads one page of the keys that start with prefix, in byte order.
func (c *Client) List(ctx context.Context, prefix []byte, opts ListOptions) (Page, error) {
	q := consistencyQuery(opts.Consistency)
	if len(prefix) > 0 {
		q.Set("prefix", string(prefix))
	}
	if opts.Limit != 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Cursor != "" {
		q.Set("cursor", opts.Cursor)
	}
	if opts.KeysOnly {
		q.Set("keys_only", "true")
	}
	resp, _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/kv/", query: q, idempotent: true})
	if err != nil {
		return Page{}, fmt.Errorf("list %q: %w", prefix, err)
	}
	var p Page
	if err := decodeJSON(resp, &p); err != nil {
		return Page{}, fmt.Errorf("list %q: %w", prefix, err)
	}
	if p.More && p.NextCursor == "" {
		return Page{}, fmt.Errorf("list %q: %w", prefix, errors.New("the server says more keys remain but gave no cursor"))
	}
	return p, nil
}

// ListAll iterates over every key that starts with prefix, fetching pages of
// opts.Limit keys from opts.Cursor on. Each page is consistent at its own
// revision, which becomes the Revision of its KVs. Iteration stops at the
// first error, yielded with a zero KV.
//
//	for kv, err := range c.ListAll(ctx, []byte("config/"), client.ListOptions{}) {
//		if err != nil {
//			return err
//		}
//		fmt.Printf("%s=%s\n", kv.Key, kv.Value)
//	}
func (c *Client) ListAll(ctx context.Context, prefix []byte, opts ListOptions) iter.Seq2[KV, error] {
	return func(yield func(KV, error) bool) {
		for page, err := range c.Pages(ctx, prefix, opts) {
			if err != nil {
				yield(KV{}, err)
				return
			}
			for _, kv := range page.KVs {
				kv.Revision = page.Revision
				if !yield(kv, nil) {
					return
				}
			}
		}
	}
}

// Pages iterates over the pages of a listing until the last one, starting
// at opts.Cursor. Iteration stops at the first error, yielded with a zero
// Page.
func (c *Client) Pages(ctx context.Context, prefix []byte, opts ListOptions) iter.Seq2[Page, error] {
	return func(yield func(Page, error) bool) {
		for {
			page, err := c.List(ctx, prefix, opts)
			if err != nil {
				yield(Page{}, err)
				return
			}
			if !yield(page, nil) || !page.More {
				return
			}
			opts.Cursor = page.NextCursor
		}
	}
}

func consistencyQuery(c Consistency) url.Values {
	q := url.Values{}
	if c != "" {
		q.Set("consistency", string(c))
	}
	return q
}

// keyPath is base followed by key, escaped so that the server's router
// decodes exactly key: see escapeKey.
func keyPath(base string, key []byte) (string, error) {
	if len(key) == 0 {
		return "", errors.New("empty key")
	}
	return base + escapeKey(key), nil
}

// escapeKey percent-encodes every byte of key but the unreserved ones of
// RFC 3986 and '/', so that any byte string survives the trip. Go's
// ServeMux (and most proxies) would clean a path with empty, "." or ".."
// segments, which would change the key; such keys have their slashes and
// dots escaped as well, which the API decodes to the same key.
func escapeKey(key []byte) string {
	keepSlash := true
	for seg := range splitSegments(key) {
		if len(seg) == 0 || string(seg) == "." || string(seg) == ".." {
			keepSlash = false
			break
		}
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(key)*3)
	for _, c := range key {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '~':
			b = append(b, c)
		case c == '.' && keepSlash:
			b = append(b, c)
		case c == '/' && keepSlash:
			b = append(b, c)
		default:
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(b)
}

// splitSegments yields the '/'-separated segments of key.
func splitSegments(key []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		start := 0
		for i, c := range key {
			if c == '/' {
				if !yield(key[start:i]) {
					return
				}
				start = i + 1
			}
		}
		yield(key[start:])
	}
}
