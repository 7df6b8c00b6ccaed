// Package httpapi serves raftkv's client API over HTTP: raftexample's root
// API (PUT/GET /{key}, POST/DELETE /{id}), the versioned API under /v1/ (see
// docs/API.md) and the reserved paths beside them.
// It validates requests and maps errors to status codes; it knows nothing of
// raft beyond the small interfaces it consumes.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/raftkv/raftkv/auth"
	"github.com/raftkv/raftkv/kvstore"
	"github.com/raftkv/raftkv/raftnode"
)

// KV is the key-value service the API serves; kvstore.KV implements it.
type KV interface {
	Put(ctx context.Context, key, value []byte, cond kvstore.Condition, lease uint64) (kvstore.Result, error)
	Delete(ctx context.Context, key []byte, cond kvstore.Condition) (kvstore.Result, error)
	DeleteRange(ctx context.Context, prefix []byte) (kvstore.Result, error)
	Get(ctx context.Context, key []byte, serializable bool) (kvstore.Item, uint64, error)
	List(ctx context.Context, req kvstore.ListRequest) (kvstore.ListResult, error)
	// Txn applies a transaction through the log.
	Txn(ctx context.Context, t *kvstore.Txn) (kvstore.TxnResult, uint64, error)
	// Freeze is the whole store at one revision, for a backup.
	Freeze(ctx context.Context, serializable bool) (kvstore.Frozen, error)
	Watch(key []byte, prefix bool, from uint64) (*kvstore.Watcher, error)
	// The leases: Grant, Revoke and Leases anywhere; KeepAlive and
	// TimeToLive on the leader, which keeps their time.
	Grant(ctx context.Context, id uint64, ttl time.Duration) (kvstore.Lease, error)
	Revoke(ctx context.Context, id uint64) (kvstore.LeaseResult, uint64, error)
	KeepAlive(ctx context.Context, id uint64) (kvstore.Lease, error)
	TimeToLive(ctx context.Context, id uint64) (kvstore.LeaseStatus, error)
	Leases(ctx context.Context) ([]kvstore.Lease, error)
	MinLeaseTTL() time.Duration
	// Applied, Watchers and Store feed /v1/status and /readyz.
	Applied() uint64
	Watchers() int
	Store() *kvstore.Store
}

// Cluster is the raft member the API serves: membership, leadership and
// status. raftnode.Node implements it.
type Cluster interface {
	ID() uint64
	ClusterID() uint64
	Leader() uint64
	IsLeader() bool
	Term() uint64
	Status() raftnode.Status
	StartedAt() time.Time
	DataDir() string
	// Members is the member table; Progress is the leader's view of each
	// member's replication, nil on other members.
	Members() []raftnode.Member
	Progress() map[uint64]raftnode.Progress
	AddMember(ctx context.Context, id uint64, peerURLs []string, learner bool) (raftnode.Member, error)
	PromoteMember(ctx context.Context, id uint64) (raftnode.Member, error)
	UpdateMember(ctx context.Context, id uint64, peerURLs []string) (raftnode.Member, error)
	RemoveMember(ctx context.Context, id uint64) error
	TransferLeadership(ctx context.Context, to uint64) (uint64, error)
}

// Limits on request sizes.
const (
	DefaultMaxKeyBytes     = 4 << 10         // 4 KiB
	DefaultMaxRequestBytes = 3 << 19         // 1.5 MiB, etcd's request limit
	maxPeerURLBytes        = 4 << 10         // a peer URL body
	defaultRequestTimeout  = 5 * time.Second // etcd's default
	// DefaultWatchKeepalive is how long a watch stream stays silent before
	// the server sends a keepalive comment.
	DefaultWatchKeepalive = 10 * time.Second
)

// Config configures the API. Zero values take the defaults above.
type Config struct {
	KV      KV
	Cluster Cluster
	Logger  *zap.Logger
	// MaxKeyBytes bounds a key; MaxRequestBytes bounds a request body.
	MaxKeyBytes     int
	MaxRequestBytes int64
	// RequestTimeout bounds how long a request waits for raft. Watch
	// streams are not bound by it.
	RequestTimeout time.Duration
	// WatchKeepalive is how long a watch stream stays silent before a
	// keepalive comment is sent.
	WatchKeepalive time.Duration
	// Version is the server's version, reported by /v1/status.
	Version string
	// Metrics, when set, receives the API's request metrics
	// (raftkv_http_*); it must not be shared with another running Server.
	Metrics prometheus.Registerer
	// Gatherer is what GET /metrics serves; nil answers 404 there.
	Gatherer prometheus.Gatherer
	// Auth, when set, turns access control on: see access.go.
	Auth *auth.Store
	// ForwardDialTLS, when set, is how a follower connects to the leader's
	// https client URL to forward a request: it dials and completes the
	// TLS handshake (listener.Reloader.DialTLSContext, which presents this
	// node's certificate and trusts its CA bundle as their files are at
	// that moment). nil dials with net/http's defaults, trusting the
	// system's CAs.
	ForwardDialTLS func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxConcurrentRequests and MaxWatchers bound the requests in progress
	// (watches apart) and the open watch streams; beyond them the API
	// answers 503 busy. BodyTimeout bounds the arrival of a request body;
	// WriteTimeout each write of a watch stream (see limits.go).
	MaxConcurrentRequests int
	MaxWatchers           int
	BodyTimeout           time.Duration
	WriteTimeout          time.Duration
	// EnablePprof serves Go's profiler at /debug/pprof/ (pprof.go).
	EnablePprof bool
	// UI is the dashboard's files, served at /ui/ (ui.go); nil turns the
	// dashboard off (--disable-ui).
	UI fs.FS
}

// Server is the client API's http.Handler.
type Server struct {
	cfg Config
	// forwarder carries member and leadership requests from a follower to
	// the leader.
	forwarder *http.Transport
	metrics   *httpMetrics
	routes    []route
	limits    *limits
	// backups holds a slot per backup being streamed (maxBackups).
	backups chan struct{}
	ui      *uiFiles // nil: the dashboard is off
	// proxyLog is where net/http's reverse proxy reports a member's answer
	// it could not relay (GET /v1/members/{id}/status).
	proxyLog *log.Logger
}

// New returns the API handler.
func New(cfg Config) *Server {
	if cfg.MaxKeyBytes <= 0 {
		cfg.MaxKeyBytes = DefaultMaxKeyBytes
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = defaultRequestTimeout
	}
	if cfg.WatchKeepalive <= 0 {
		cfg.WatchKeepalive = DefaultWatchKeepalive
	}
	if cfg.MaxConcurrentRequests <= 0 {
		cfg.MaxConcurrentRequests = DefaultMaxConcurrentRequests
	}
	if cfg.MaxWatchers <= 0 {
		cfg.MaxWatchers = DefaultMaxWatchers
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Server{cfg: cfg, forwarder: newForwarder(cfg.ForwardDialTLS), metrics: newHTTPMetrics(cfg), limits: newLimits(cfg), routes: apiRoutes(cfg.EnablePprof),
		backups: make(chan struct{}, maxBackups), ui: newUIFiles(cfg.UI),
		proxyLog: zap.NewStdLog(cfg.Logger.Named("member-status"))}
}

// ServeHTTP dispatches on the raw path through the route table. It does not
// use http.ServeMux: the mux cleans paths and redirects "a//b" or "a/../b",
// which are legal keys.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw := strings.TrimPrefix(r.URL.EscapedPath(), "/")
	rt, rest, unmatched := s.lookup(r, raw)
	t := s.metrics.track(w, r, rt.label)
	defer t.done()
	w = t
	s.setRaftHeaders(w.Header())
	// Credentials are checked before the request takes a slot or its body
	// is read: with access control on, a stranger's slow bodies are
	// answered 401 at once instead of holding the slots writers need.
	err := crossOrigin(r)
	if err == nil && unmatched == nil {
		r, err = s.authorize(r, rt.accessOf(r.Method))
	}
	if err != nil {
		if r.ContentLength != 0 {
			// net/http would otherwise read what is left of the body
			// before answering, as slowly as the client sends it.
			w.Header().Set("Connection", "close")
		}
		writeError(w, err)
		return
	}
	release, ok := s.admit(w, r, rt)
	if !ok {
		return
	}
	defer release()
	if unmatched != nil {
		err = methodNotAllowedOn(w, r, unmatched)
	} else {
		err = rt.serve(s, w, r, rest)
	}
	if err != nil {
		writeError(w, err)
	}
}

// rootPath decodes the path of a root API request. An escaped path such as
// /v1%2Fkv or /%761 decodes to a reserved name; such keys are reached
// through /v1/kv/ only.
func rootPath(rawPath string) (string, error) {
	path, err := url.PathUnescape(rawPath)
	if err != nil {
		return "", badRequest("invalid_key", "the path is not valid URL encoding: "+err.Error())
	}
	if first, _, _ := strings.Cut(path, "/"); first == "v1" || reservedRoots[first] {
		return "", &Error{Status: http.StatusNotFound, Code: "not_found",
			Message: fmt.Sprintf("keys starting with %q are reserved on the root API; use /v1/kv/", first)}
	}
	return path, nil
}

// serveRootKey serves raftexample's GET and PUT /{key}.
func (s *Server) serveRootKey(w http.ResponseWriter, r *http.Request, rawPath string) error {
	key, err := rootPath(rawPath)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	if r.Method == http.MethodPut {
		return s.put(ctx, w, r, key)
	}
	return s.get(ctx, w, r, key)
}

// serveRootMember serves raftexample's POST and DELETE /{id}.
func (s *Server) serveRootMember(w http.ResponseWriter, r *http.Request, rawPath string) error {
	path, err := rootPath(rawPath)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	if r.Method == http.MethodPost {
		return s.addMember(ctx, w, r, path)
	}
	return s.removeMember(ctx, w, r, path)
}

// checkKey checks a key's size; usage tells how to name a key.
func (s *Server) checkKey(key, usage string) error {
	if key == "" {
		return badRequest("empty_key", "the key is empty: use "+usage)
	}
	if len(key) > s.cfg.MaxKeyBytes {
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "key_too_large",
			Message: fmt.Sprintf("the key is %d bytes; the limit is %d", len(key), s.cfg.MaxKeyBytes)}
	}
	return nil
}

// consistency reads ?consistency=linearizable|serializable.
func consistency(r *http.Request) (serializable bool, err error) {
	return parseConsistency(r.URL.Query().Get("consistency"))
}

func parseConsistency(c string) (serializable bool, err error) {
	switch c {
	case "", "linearizable":
		return false, nil
	case "serializable":
		return true, nil
	default:
		return false, badRequest("invalid_consistency", fmt.Sprintf("consistency %q: use linearizable or serializable", c))
	}
}

func (s *Server) get(ctx context.Context, w http.ResponseWriter, r *http.Request, key string) error {
	if err := s.checkKey(key, "/{key}"); err != nil {
		return err
	}
	if err := mayRead(r, []byte(key)); err != nil {
		return err
	}
	serializable, err := consistency(r)
	if err != nil {
		return err
	}
	it, _, err := s.cfg.KV.Get(ctx, []byte(key), serializable)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(it.Value)))
	h.Set("ETag", etag(it.ModRevision))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(it.Value)
	}
	return nil
}

func (s *Server) put(ctx context.Context, w http.ResponseWriter, r *http.Request, key string) error {
	if err := s.checkKey(key, "/{key}"); err != nil {
		return err
	}
	if err := mayWrite(r, []byte(key)); err != nil {
		return err
	}
	value, err := readBody(w, r, s.cfg.MaxRequestBytes)
	if err != nil {
		return err
	}
	res, err := s.cfg.KV.Put(ctx, []byte(key), value, kvstore.Condition{}, 0)
	if err != nil {
		return err
	}
	w.Header().Set("X-Raftkv-Revision", strconv.FormatUint(res.Revision, 10))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) addMember(ctx context.Context, w http.ResponseWriter, r *http.Request, path string) error {
	id, err := parseMemberID(path)
	if err != nil {
		return err
	}
	// On the leader, as /v1/members.
	if forwarded, err := s.forwardToLeader(w, r, maxPeerURLBytes); forwarded || err != nil {
		return err
	}
	body, err := readBody(w, r, maxPeerURLBytes)
	if err != nil {
		return err
	}
	peerURL := strings.TrimSpace(string(body))
	if peerURL == "" {
		return badRequest("invalid_peer_url", "the body must be the new member's peer URL, e.g. http://127.0.0.1:42379")
	}
	if _, err := s.addNewMember(ctx, id, []string{peerURL}, false); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) removeMember(ctx context.Context, w http.ResponseWriter, r *http.Request, path string) error {
	id, err := parseMemberID(path)
	if err != nil {
		return err
	}
	// On the leader, as /v1/members: a leader that is removed hands
	// leadership over first, which only it can do.
	if forwarded, err := s.forwardToLeader(w, r, maxPeerURLBytes); forwarded || err != nil {
		return err
	}
	if err := s.cfg.Cluster.RemoveMember(ctx, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func parseMemberID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 0, 64)
	if err != nil || id == 0 {
		return 0, badRequest("invalid_member_id",
			fmt.Sprintf("member id %q must be a positive integer (POST and DELETE /{id} change membership; PUT /{key} writes a key)", s))
	}
	return id, nil
}

// setRaftHeaders sets X-Raft-Leader and X-Raft-Term, which every response
// of the client port carries.
func (s *Server) setRaftHeaders(h http.Header) {
	h.Set("X-Raft-Leader", strconv.FormatUint(s.cfg.Cluster.Leader(), 10))
	h.Set("X-Raft-Term", strconv.FormatUint(s.cfg.Cluster.Term(), 10))
}

// readBody reads a request body of at most limit bytes. A declared length
// over the limit is refused before anything is read.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		w.Header().Set("Connection", "close")
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: "request_too_large",
			Message: fmt.Sprintf("the request body is %d bytes; the limit is %d", r.ContentLength, limit)}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: "request_too_large",
			Message: fmt.Sprintf("the request body exceeds the %d-byte limit", limit)}
	case errors.Is(err, os.ErrDeadlineExceeded):
		w.Header().Set("Connection", "close")
		return nil, &Error{Status: http.StatusRequestTimeout, Code: "body_timeout",
			Message: "the request body did not arrive within the node's body timeout"}
	case err != nil:
		return nil, badRequest("bad_body", "reading the request body: "+err.Error())
	}
	return body, nil
}

var (
	_ Cluster = (*raftnode.Node)(nil)
	_ KV      = (*kvstore.KV)(nil)
)
