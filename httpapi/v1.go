package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/raftkv/raftkv/kvstore"
)

// Listing limits.
const (
	defaultListLimit = 1000
	maxListLimit     = 10000
)

// serveKV serves /v1/kv/{key}, and the listing and range deletes of /v1/kv/.
func (s *Server) serveKV(w http.ResponseWriter, r *http.Request, rawKey string) error {
	key, err := unescapeKey(rawKey)
	if err != nil {
		return err
	}
	q, err := parseQuery(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	if key == "" {
		switch {
		case r.Method == http.MethodGet || r.Method == http.MethodHead:
			if err := onlyParams(q, "prefix", "limit", "cursor", "keys_only", "consistency", "encoding"); err != nil {
				return err
			}
			return s.list(ctx, w, r, q)
		case r.Method == http.MethodDelete && q.Has("prefix"):
			if err := onlyParams(q, "prefix"); err != nil {
				return err
			}
			return s.deleteRange(ctx, w, r, q)
		}
		return badRequest("empty_key", "the key is empty: use /v1/kv/{key}, or /v1/kv/?prefix=P to list or delete a range")
	}
	// On a key, a prefix would be a mistake waiting to happen: a client that
	// meant a range delete must not delete one key instead, or vice versa.
	if q.Has("prefix") {
		return badRequest("invalid_parameter", "prefix applies to /v1/kv/ only, not to a key")
	}
	if err := s.checkKey(key, "/v1/kv/{key}"); err != nil {
		return err
	}
	var known []string
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		known = []string{"consistency"}
	case http.MethodPut:
		known = []string{"lease"}
	}
	if err := onlyParams(q, known...); err != nil {
		return err
	}
	switch r.Method {
	case http.MethodPut:
		return s.putV1(ctx, w, r, q, key)
	case http.MethodDelete:
		return s.deleteV1(ctx, w, r, key)
	default:
		return s.getV1(ctx, w, r, q, key)
	}
}

// unescapeKey percent-decodes a key from the escaped path.
func unescapeKey(raw string) (string, error) {
	key, err := url.PathUnescape(raw)
	if err != nil {
		return "", badRequest("invalid_key", "the key is not valid URL encoding: "+err.Error())
	}
	return key, nil
}

// parseQuery parses the query string strictly: a malformed one is refused
// rather than partly ignored, since a dropped prefix would widen a range
// delete.
func parseQuery(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("invalid_parameter", "the query string is malformed: "+err.Error())
	}
	return q, nil
}

// noParams refuses a request with any query parameter.
func noParams(r *http.Request) error {
	q, err := parseQuery(r)
	if err != nil {
		return err
	}
	return onlyParams(q)
}

// onlyParams refuses a parameter the request does not take: a misspelt
// one (prefx=) would otherwise be ignored, and a listing of one prefix
// would silently list every key.
func onlyParams(q url.Values, known ...string) error {
	for _, name := range slices.Sorted(maps.Keys(q)) { // the same name each time
		if !slices.Contains(known, name) {
			takes := "no parameters"
			if len(known) > 0 {
				takes = strings.Join(known, ", ")
			}
			return badRequest("invalid_parameter", fmt.Sprintf("unknown parameter %q: this request takes %s", name, takes))
		}
	}
	return nil
}

// param returns the one value of a query parameter and whether it is there.
// A repeated parameter is refused.
func param(q url.Values, name string) (string, bool, error) {
	vs, ok := q[name]
	switch {
	case !ok:
		return "", false, nil
	case len(vs) > 1:
		return "", false, badRequest("invalid_parameter", fmt.Sprintf("%s is given %d times", name, len(vs)))
	}
	return vs[0], true, nil
}

// boolParam reads a true|false parameter; absent is false.
func boolParam(q url.Values, name string) (bool, error) {
	v, ok, err := param(q, name)
	switch {
	case err != nil:
		return false, err
	case !ok:
		return false, nil
	case v == "true":
		return true, nil
	case v == "false":
		return false, nil
	}
	return false, badRequest("invalid_parameter", fmt.Sprintf("%s=%q: use true or false", name, v))
}

func consistencyParam(q url.Values) (serializable bool, err error) {
	c, _, err := param(q, "consistency")
	if err != nil {
		return false, err
	}
	return parseConsistency(c)
}

// condition reads If-Match and If-None-Match into the condition the state
// machine checks atomically with the write; the handler never checks it.
func condition(h http.Header, method string) (kvstore.Condition, error) {
	match, hasMatch := h["If-Match"]
	none, hasNone := h["If-None-Match"]
	bad := func(format string, args ...any) error {
		return badRequest("invalid_precondition", fmt.Sprintf(format, args...))
	}
	switch {
	case hasMatch && hasNone:
		return kvstore.Condition{}, bad("If-Match and If-None-Match cannot be combined")
	case hasNone:
		if method == http.MethodDelete {
			return kvstore.Condition{}, bad("If-None-Match: * cannot hold for a key that DELETE removes; use If-Match")
		}
		if len(none) != 1 || strings.TrimSpace(none[0]) != "*" {
			return kvstore.Condition{}, bad("If-None-Match %s: only * (create only) is supported", strings.Join(none, ", "))
		}
		return kvstore.Condition{Kind: kvstore.CondAbsent}, nil
	case hasMatch:
		if len(match) != 1 {
			return kvstore.Condition{}, bad("If-Match %s: give one revision", strings.Join(match, ", "))
		}
		v := strings.TrimSpace(match[0])
		if v == "*" {
			return kvstore.Condition{Kind: kvstore.CondExists}, nil
		}
		rev, ok := parseRevisionTag(v)
		if !ok {
			return kvstore.Condition{}, bad(`If-Match %s: use "<mod revision>" (a positive integer, quotes optional) or *`, match[0])
		}
		return kvstore.Condition{Kind: kvstore.CondModRevision, ModRevision: rev}, nil
	}
	return kvstore.Condition{}, nil
}

// parseRevisionTag parses a strong entity tag holding a revision, quoted or
// not. Weak tags and lists are not revisions.
func parseRevisionTag(v string) (uint64, bool) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return parsePositive(v)
}

// parsePositive parses a positive decimal integer of digits only (no sign,
// no spaces, no 0x).
func parsePositive(v string) (uint64, bool) {
	if v == "" || strings.TrimLeft(v, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return 0, false
	}
	return n, true
}

func setRevision(h http.Header, revision uint64) {
	h.Set("X-Raftkv-Revision", strconv.FormatUint(revision, 10))
}

// writeJSON writes a 200 JSON answer. <, > and & are written as they are,
// not as \u003c..., so that encoding=text shows "a && b" to a person: with
// nosniff no browser takes the answer for HTML, as for errors.
func writeJSON(w http.ResponseWriter, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func (s *Server) getV1(ctx context.Context, w http.ResponseWriter, r *http.Request, q url.Values, key string) error {
	if err := mayRead(r, []byte(key)); err != nil {
		return err
	}
	serializable, err := consistencyParam(q)
	if err != nil {
		return err
	}
	it, rev, err := s.cfg.KV.Get(ctx, []byte(key), serializable)
	if errors.Is(err, kvstore.ErrKeyNotFound) {
		setRevision(w.Header(), rev) // the key is missing at that revision
	}
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(it.Value)))
	h.Set("ETag", etag(it.ModRevision))
	h.Set("X-Raftkv-Create-Revision", strconv.FormatUint(it.CreateRevision, 10))
	h.Set("X-Raftkv-Mod-Revision", strconv.FormatUint(it.ModRevision, 10))
	h.Set("X-Raftkv-Version", strconv.FormatUint(it.Version, 10))
	if it.Lease != 0 {
		h.Set("X-Raftkv-Lease", strconv.FormatUint(it.Lease, 10))
	}
	setRevision(h, rev)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(it.Value)
	}
	return nil
}

// putResponse answers PUT /v1/kv/{key}.
type putResponse struct {
	Revision       uint64 `json:"revision"`
	CreateRevision uint64 `json:"create_revision"`
	ModRevision    uint64 `json:"mod_revision"`
	Version        uint64 `json:"version"`
	Created        bool   `json:"created"`
}

func (s *Server) putV1(ctx context.Context, w http.ResponseWriter, r *http.Request, q url.Values, key string) error {
	if err := mayWrite(r, []byte(key)); err != nil {
		return err
	}
	cond, err := condition(r.Header, r.Method)
	if err != nil {
		return err
	}
	var lease uint64
	if v, ok, err := param(q, "lease"); err != nil {
		return err
	} else if ok {
		if lease, err = parseLeaseID(v); err != nil {
			return err
		}
	}
	value, err := readBody(w, r, s.cfg.MaxRequestBytes)
	if err != nil {
		return err
	}
	res, err := s.cfg.KV.Put(ctx, []byte(key), value, cond, lease)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("ETag", etag(res.Item.ModRevision))
	setRevision(h, res.Revision)
	writeJSON(w, putResponse{
		Revision:       res.Revision,
		CreateRevision: res.Item.CreateRevision,
		ModRevision:    res.Item.ModRevision,
		Version:        res.Item.Version,
		Created:        res.Created,
	})
	return nil
}

// deleteResponse answers DELETE /v1/kv/{key} and DELETE /v1/kv/?prefix=P.
type deleteResponse struct {
	Revision uint64 `json:"revision"`
	Deleted  int    `json:"deleted"`
}

func (s *Server) deleteV1(ctx context.Context, w http.ResponseWriter, r *http.Request, key string) error {
	if err := mayWrite(r, []byte(key)); err != nil {
		return err
	}
	cond, err := condition(r.Header, r.Method)
	if err != nil {
		return err
	}
	res, err := s.cfg.KV.Delete(ctx, []byte(key), cond)
	if err != nil {
		return err
	}
	setRevision(w.Header(), res.Revision)
	writeJSON(w, deleteResponse{Revision: res.Revision, Deleted: res.Deleted})
	return nil
}

func (s *Server) deleteRange(ctx context.Context, w http.ResponseWriter, r *http.Request, q url.Values) error {
	prefix, _, err := param(q, "prefix")
	if err != nil {
		return err
	}
	if err := s.checkPrefix(prefix); err != nil {
		return err
	}
	if err := mayWriteAll(r, []byte(prefix)); err != nil {
		return err
	}
	if _, ok := r.Header["If-Match"]; ok {
		return badRequest("invalid_precondition", "a range delete takes no If-Match")
	}
	if _, ok := r.Header["If-None-Match"]; ok {
		return badRequest("invalid_precondition", "a range delete takes no If-None-Match")
	}
	res, err := s.cfg.KV.DeleteRange(ctx, []byte(prefix))
	if err != nil {
		return err
	}
	setRevision(w.Header(), res.Revision)
	writeJSON(w, deleteResponse{Revision: res.Revision, Deleted: res.Deleted})
	return nil
}

// checkPrefix bounds a prefix like a key: a longer one matches nothing.
func (s *Server) checkPrefix(prefix string) error {
	if len(prefix) > s.cfg.MaxKeyBytes {
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "key_too_large",
			Message: fmt.Sprintf("the prefix is %d bytes; the limit for keys is %d", len(prefix), s.cfg.MaxKeyBytes)}
	}
	return nil
}

// listResponse answers GET /v1/kv/.
type listResponse struct {
	Revision   uint64     `json:"revision"`
	KVs        []listedKV `json:"kvs"`
	More       bool       `json:"more"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

func (s *Server) list(ctx context.Context, w http.ResponseWriter, r *http.Request, q url.Values) error {
	prefix, _, err := param(q, "prefix")
	if err != nil {
		return err
	}
	if err := s.checkPrefix(prefix); err != nil {
		return err
	}
	limit := defaultListLimit
	if v, ok, err := param(q, "limit"); err != nil {
		return err
	} else if ok {
		n, ok := parsePositive(v)
		if !ok || n > maxListLimit {
			return badRequest("invalid_limit", fmt.Sprintf("limit %q: use 1 to %d", v, maxListLimit))
		}
		limit = int(n)
	}
	var after []byte
	if v, ok, err := param(q, "cursor"); err != nil {
		return err
	} else if ok {
		if after, err = parseCursor(v, prefix, s.cfg.MaxKeyBytes); err != nil {
			return err
		}
	}
	keysOnly, err := boolParam(q, "keys_only")
	if err != nil {
		return err
	}
	serializable, err := consistencyParam(q)
	if err != nil {
		return err
	}
	enc, err := encodingParam(q)
	if err != nil {
		return err
	}
	res, err := s.cfg.KV.List(ctx, kvstore.ListRequest{Prefix: []byte(prefix), After: after, Limit: limit,
		Serializable: serializable, Only: readableUnder(r, prefix)})
	if err != nil {
		return err
	}
	out := listResponse{Revision: res.Revision, KVs: make([]listedKV, len(res.KVs)), More: res.More}
	for i, kv := range res.KVs {
		// A page with one key text cannot carry is refused whole, before
		// anything is written (keyEncoding says why).
		if out.KVs[i], err = enc.listed(kv, keysOnly); err != nil {
			return err
		}
	}
	if res.More && len(res.KVs) > 0 {
		out.NextCursor = cursorOf(res.KVs[len(res.KVs)-1].Key)
	}
	setRevision(w.Header(), res.Revision)
	writeJSON(w, out)
	return nil
}

// cursorOf is the cursor that continues a listing after key: the key in
// unpadded URL-safe base64 (RFC 4648 §5), so that it needs no escaping in a
// query string and a client can start after any key it knows.
func cursorOf(key []byte) string { return base64.RawURLEncoding.EncodeToString(key) }

// parseCursor decodes a cursor of a listing of prefix. Only a key under the
// prefix can be one: any other (a typo, a cursor of another listing) would
// otherwise page from a place the client did not mean, or look like the
// end of the list. The message does not echo the cursor, which can be as
// large as a request line.
func parseCursor(v, prefix string, maxKeyBytes int) ([]byte, error) {
	key, err := base64.RawURLEncoding.DecodeString(v)
	switch {
	case err != nil || cursorOf(key) != v:
		return nil, badRequest("invalid_cursor", "the cursor is not unpadded URL-safe base64: pass a listing's next_cursor unchanged")
	case len(key) == 0 || len(key) > maxKeyBytes || !bytes.HasPrefix(key, []byte(prefix)):
		return nil, badRequest("invalid_cursor", "the cursor is not a key under this prefix: pass the next_cursor of a listing of the same prefix")
	}
	return key, nil
}
