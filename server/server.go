// Package server assembles one raftkv node from its parts: the store, the raft
// node, the KV service and the client API on the listeners it is given. The
// command and the tests start nodes through it, so both run the same wiring.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/raftkv/raftkv/httpapi"
	"github.com/raftkv/raftkv/kvstore"
	"github.com/raftkv/raftkv/listener"
	"github.com/raftkv/raftkv/raftnode"
)

// drainTimeout bounds how long Stop waits, once raft has stopped, for client
// connections to go idle before closing them. Requests fail at once then, so
// only a connection that never sent a request (which net/http counts as busy
// for five seconds) or a slow reader lasts that long.
const drainTimeout = time.Second

// Config configures a server.
type Config struct {
	// Raft configures the raft node; its Logger is set from Logger and its
	// StateMachine and Metrics by the server, and its HistoryEntries, when
	// zero, from KV's WatchHistory.
	Raft raftnode.Config
	// KV configures the key-value service (watch limits); its channels,
	// store, logger and metrics are set by the server.
	KV kvstore.Config
	// API configures the client API; its KV, Cluster, Logger, Metrics and
	// Gatherer are set by the server.
	API httpapi.Config
	// ClientListener serves the client API; the server closes it. A
	// *listener.Listener gets the connection limit below its TLS.
	ClientListener net.Listener
	Logger         *zap.Logger
	// MaxConnections caps the open client connections (default
	// DefaultMaxConnections); IdleTimeout and ReadHeaderTimeout close
	// connections that wait too long for a request or its headers (see
	// conns.go for the defaults).
	MaxConnections    int
	IdleTimeout       time.Duration
	ReadHeaderTimeout time.Duration
}

// Server is a running raftkv node.
type Server struct {
	lg    *zap.Logger
	node  *raftnode.Node
	kv    *kvstore.KV
	store *kvstore.Store
	http  *http.Server
	conns *connLimiter

	done     chan struct{} // closed when everything has stopped
	err      error         // why it stopped; read after done
	stop     chan struct{} // closed by Stop
	stopOnce sync.Once
}

// Start starts a node. If it fails, the listeners are closed.
func Start(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	store := kvstore.NewStore()
	// Each server has its own registry for the raftkv_* metrics, so that
	// servers in one process (as in the tests) do not collide. /metrics
	// serves it together with the default registry, which holds what is
	// per process: Go runtime and process metrics and rafthttp's
	// etcd_network_* metrics (registered there by rafthttp itself).
	reg := prometheus.NewRegistry()
	cfg.Raft.Logger = cfg.Logger
	cfg.Raft.StateMachine = store
	cfg.Raft.Metrics = reg
	if cfg.Raft.HistoryEntries == 0 {
		// A restart applies again as many entries as the watch history
		// holds events, so that it serves what it served before (about:
		// an entry can make no event or several).
		cfg.Raft.HistoryEntries = uint64(cfg.KV.WatchHistory)
		if cfg.KV.WatchHistory <= 0 {
			cfg.Raft.HistoryEntries = kvstore.DefaultWatchHistory
		}
	}
	node, err := raftnode.Start(cfg.Raft)
	if err != nil {
		closeListeners(cfg)
		return nil, err
	}
	cfg.KV.Logger = cfg.Logger
	cfg.KV.Store = store
	cfg.KV.MemberID = cfg.Raft.ID
	cfg.KV.ProposeC = node.ProposeC()
	cfg.KV.CommitC = node.CommitC()
	cfg.KV.Raft = node
	cfg.KV.Metrics = reg
	if cfg.KV.RequestTimeout <= 0 {
		cfg.KV.RequestTimeout = cfg.API.RequestTimeout
	}
	kv := kvstore.New(cfg.KV)
	cfg.API.KV = kv
	cfg.API.Cluster = node
	cfg.API.Logger = cfg.Logger
	cfg.API.Metrics = reg
	cfg.API.Gatherer = prometheus.Gatherers{reg, prometheus.DefaultGatherer}
	clientLn, conns := limitConns(cfg)
	s := &Server{
		lg:    cfg.Logger,
		node:  node,
		kv:    kv,
		store: store,
		http: &http.Server{Handler: httpapi.New(cfg.API),
			ReadHeaderTimeout: cfg.ReadHeaderTimeout, IdleTimeout: cfg.IdleTimeout,
			ConnState: conns.connState,
			// Failed TLS handshakes and the like, which net/http would
			// print to stderr.
			ErrorLog: zap.NewStdLog(cfg.Logger.Named("client-http"))},
		conns: conns,
		done:  make(chan struct{}),
		stop:  make(chan struct{}),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.http.Serve(clientLn) }()
	go s.run(serveErr)
	return s, nil
}

// limitConns puts the connection limiter on the client listener, below TLS
// when it can.
func limitConns(cfg Config) (net.Listener, *connLimiter) {
	var conns *connLimiter
	wrap := func(ln net.Listener) net.Listener {
		conns = newConnLimiter(ln, cfg.MaxConnections)
		return conns
	}
	if ln, ok := cfg.ClientListener.(*listener.Listener); ok {
		ln.WrapTCP(wrap)
		return ln, conns
	}
	return wrap(cfg.ClientListener), conns
}

func closeListeners(cfg Config) {
	if cfg.Raft.PeerListener != nil {
		cfg.Raft.PeerListener.Close()
	}
	if cfg.ClientListener != nil {
		cfg.ClientListener.Close()
	}
}

// run waits for a reason to stop and then shuts down in order: stop accepting
// client requests, stop raft so that requests still waiting fail at once
// instead of running into their timeout, then wait for the client server to
// finish them.
func (s *Server) run(serveErr <-chan error) {
	defer close(s.done)
	var err error
	select {
	case <-s.stop:
	case err = <-s.node.ErrorC():
	case <-s.kv.Done():
		// The node closes the commit stream after reporting why it stopped;
		// if it is still running, the state machine failed on its own.
		s.node.Stop()
		if err = <-s.node.ErrorC(); err == nil {
			err = s.kv.Err()
		}
		if err == nil {
			err = errors.New("server: the state machine stopped applying")
		}
	case serr := <-serveErr:
		err = fmt.Errorf("server: client API: %w", serr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- s.http.Shutdown(ctx) }()
	s.node.Stop()
	<-s.kv.Done()
	drain := time.NewTimer(drainTimeout)
	defer drain.Stop()
	select {
	case <-shutdownDone:
	case <-drain.C:
		cancel()
		<-shutdownDone
		if cerr := s.http.Close(); cerr != nil {
			s.lg.Warn("close client API", zap.Error(cerr))
		}
	}
	s.err = err
}

// Stop shuts the server down and waits for it. It is idempotent.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	return s.err
}

// Done is closed when the server has stopped, by Stop or on its own (a fatal
// error, or the member's removal from the cluster).
func (s *Server) Done() <-chan struct{} { return s.done }

// Err returns why the server stopped: nil after Stop, raftnode.ErrRemoved
// after this member's removal, another error on failure. Call it after Done.
func (s *Server) Err() error {
	<-s.done
	return s.err
}

// ClientConnections returns the open client connections.
func (s *Server) ClientConnections() int { return s.conns.count() }

// Node returns the raft node.
func (s *Server) Node() *raftnode.Node { return s.node }

// KV returns the key-value service.
func (s *Server) KV() *kvstore.KV { return s.kv }
