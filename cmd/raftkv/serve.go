package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/raftkv/raftkv/auth"
	"github.com/raftkv/raftkv/httpapi"
	"github.com/raftkv/raftkv/kvstore"
	"github.com/raftkv/raftkv/listener"
	"github.com/raftkv/raftkv/raftnode"
	"github.com/raftkv/raftkv/server"
	"github.com/raftkv/raftkv/ui"
)

// serveFlags are the command-line settings of `raftkv serve`. The first four
// are raftexample's, unchanged.
type serveFlags struct {
	id           uint64
	cluster      string
	port         int
	join         bool
	dataDir      string
	listenClient string
	logLevel     string

	snapshotCount          uint64
	snapshotCatchUpEntries uint64
	maxSnapshots           int
	maxWALs                int
	requestTimeout         time.Duration
	maxKeyBytes            int
	maxRequestBytes        int64
	watchHistory           int
	watchBuffer            int
	maxSnapshotBytes       int64
	enablePprof            bool
	disableUI              bool

	name                string
	listenPeer          string
	advertiseClientURL  string
	clusterToken        string
	initialClusterState string
	forceNewCluster     bool
	heartbeatMS         int
	electionMS          int

	clientTLS listener.TLSFiles
	peerTLS   listener.TLSFiles

	authFile string
	limits   clientLimits
}

func newServeCommand() *cobra.Command {
	var f serveFlags
	d := raftnode.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a raftkv node",
		Long: `Run a raftkv node. Every flag can also be set with an environment variable
RAFTKV_<FLAG>, e.g. RAFTKV_SNAPSHOT_COUNT=1000; a flag on the command line wins.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags()); err != nil {
				return err
			}
			return serve(f)
		},
	}
	// A bad serve command line exits 1, like its other refusals (README),
	// not 2 as the client commands' usage errors.
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return flagProblem(err) })
	fl := cmd.Flags()
	fl.Uint64Var(&f.id, "id", 1, "this node's id: its position (from 1) in --cluster")
	fl.StringVar(&f.cluster, "cluster", "http://127.0.0.1:9021", "comma-separated peer URLs of the cluster, in id order")
	fl.IntVar(&f.port, "port", 9121, "client API port")
	fl.BoolVar(&f.join, "join", false, "join a running cluster (after POST /{id} added this node)")
	fl.StringVar(&f.dataDir, "data-dir", "", "directory for the WAL and snapshots (default raftkv-<id>)")
	fl.StringVar(&f.listenClient, "listen-client", "127.0.0.1", "host or IP the client API listens on")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.Uint64Var(&f.snapshotCount, "snapshot-count", d.SnapshotCount, "applied entries between snapshots")
	fl.Uint64Var(&f.snapshotCatchUpEntries, "snapshot-catchup-entries", d.SnapshotCatchUpEntries, "entries kept after a snapshot for slow followers")
	fl.IntVar(&f.maxSnapshots, "max-snapshots", d.MaxSnapshots, "snapshot files to keep (0 keeps all)")
	fl.IntVar(&f.maxWALs, "max-wals", d.MaxWALs, "WAL files to keep (0 keeps all)")
	fl.DurationVar(&f.requestTimeout, "request-timeout", 5*time.Second, "how long a request waits for raft before 504")
	fl.IntVar(&f.maxKeyBytes, "max-key-bytes", httpapi.DefaultMaxKeyBytes, "largest key accepted, in bytes")
	fl.Int64Var(&f.maxRequestBytes, "max-request-bytes", httpapi.DefaultMaxRequestBytes, "largest request body (value) accepted, in bytes")
	fl.IntVar(&f.watchHistory, "watch-history", kvstore.DefaultWatchHistory, "recent change events kept for watches that resume")
	fl.BoolVar(&f.enablePprof, "enable-pprof", false, "serve Go's profiler at /debug/pprof/ on the client port (admin-only with --auth-file)")
	fl.BoolVar(&f.disableUI, "disable-ui", false, "do not serve the dashboard at /ui/ on the client port")
	fl.IntVar(&f.watchBuffer, "watch-buffer", kvstore.DefaultWatchBuffer, "revisions a watcher may have pending before it is closed as lagging")
	fl.StringVar(&f.name, "name", "", "this member's name (default raftkv-<id>)")
	fl.StringVar(&f.listenPeer, "listen-peer", "", "host:port the peer (raft) port listens on (default: the host and port of this node's URL in --cluster), e.g. to sit behind a proxy")
	fl.StringVar(&f.advertiseClientURL, "advertise-client-url", "", "client URL published to the other members (default http://<listen-client>:<port>)")
	fl.StringVar(&f.clusterToken, "initial-cluster-token", raftnode.DefaultClusterToken, "token that, with the initial peer URLs, makes the cluster's id")
	fl.StringVar(&f.initialClusterState, "initial-cluster-state", "new", "new to bootstrap a cluster, existing to join one (same as --join)")
	fl.BoolVar(&f.forceNewCluster, "force-new-cluster", false, "after losing quorum for good: remove every other member and serve alone, keeping what this member committed (docs/BACKUP.md); for one start")
	fl.IntVar(&f.heartbeatMS, "heartbeat-ms", 100, "raft heartbeat interval in milliseconds")
	fl.IntVar(&f.electionMS, "election-ms", 1000, "raft election timeout in milliseconds (at least twice --heartbeat-ms)")
	fl.StringVar(&f.clientTLS.CertFile, "cert-file", "", "serve the client API over TLS with this certificate (PEM)")
	fl.StringVar(&f.clientTLS.KeyFile, "key-file", "", "key of --cert-file (PEM)")
	fl.StringVar(&f.clientTLS.TrustedCAFile, "trusted-ca-file", "", "CA bundle that signs client certificates and, for forwarded requests, the other members' client certificates")
	fl.BoolVar(&f.clientTLS.ClientCertAuth, "client-cert-auth", false, "require client certificates signed by --trusted-ca-file")
	fl.StringVar(&f.peerTLS.CertFile, "peer-cert-file", "", "talk to peers over TLS with this certificate (PEM); every peer URL is then https")
	fl.StringVar(&f.peerTLS.KeyFile, "peer-key-file", "", "key of --peer-cert-file (PEM)")
	fl.StringVar(&f.peerTLS.TrustedCAFile, "peer-trusted-ca-file", "", "CA bundle that signs the peers' certificates")
	fl.BoolVar(&f.peerTLS.ClientCertAuth, "peer-client-cert-auth", false, "require peers to present certificates signed by --peer-trusted-ca-file")
	fl.StringSliceVar(&f.peerTLS.AllowedCNs, "peer-cert-allowed-cn", nil, "comma-separated common names a peer's certificate must have one of (needs --peer-client-cert-auth)")
	fl.StringSliceVar(&f.peerTLS.AllowedHostnames, "peer-cert-allowed-hostname", nil, "comma-separated hostnames or IPs a peer's certificate must be valid for one of (needs --peer-client-cert-auth)")
	fl.Int64Var(&f.maxSnapshotBytes, "max-snapshot-bytes", raftnode.DefaultMaxSnapshotBytes, "largest snapshot accepted from the leader, in bytes")
	fl.StringVar(&f.authFile, "auth-file", "", "turn access control on with the users and tokens in this JSON file (docs/SECURITY.md); SIGHUP reloads it")
	f.limits.addFlags(fl)
	return cmd
}

// config turns flags into the node's configuration and checks everything that
// can be checked without touching the disk or the network.
func (f *serveFlags) config() (raftnode.Config, error) {
	if f.port <= 0 || f.port > 65535 {
		return raftnode.Config{}, fmt.Errorf("--port %d is not a valid port", f.port)
	}
	switch {
	case f.maxKeyBytes <= 0:
		return raftnode.Config{}, fmt.Errorf("--max-key-bytes %d must be positive", f.maxKeyBytes)
	case f.maxRequestBytes <= 0:
		return raftnode.Config{}, fmt.Errorf("--max-request-bytes %d must be positive", f.maxRequestBytes)
	case f.requestTimeout <= 0:
		return raftnode.Config{}, fmt.Errorf("--request-timeout %v must be positive", f.requestTimeout)
	case f.watchHistory <= 0:
		return raftnode.Config{}, fmt.Errorf("--watch-history %d must be positive", f.watchHistory)
	case f.watchBuffer <= 0:
		return raftnode.Config{}, fmt.Errorf("--watch-buffer %d must be positive", f.watchBuffer)
	case f.maxSnapshotBytes <= 0:
		return raftnode.Config{}, fmt.Errorf("--max-snapshot-bytes %d must be positive", f.maxSnapshotBytes)
	}
	switch f.initialClusterState {
	case "new":
	case "existing":
		f.join = true
	default:
		return raftnode.Config{}, fmt.Errorf("--initial-cluster-state %q: use new or existing", f.initialClusterState)
	}
	if f.heartbeatMS <= 0 || f.electionMS < 2*f.heartbeatMS {
		return raftnode.Config{}, fmt.Errorf("--heartbeat-ms %d and --election-ms %d: the heartbeat must be positive and the election timeout at least twice it (etcd uses 100 and 1000)", f.heartbeatMS, f.electionMS)
	}
	nofile, err := raiseFileLimit()
	if err != nil {
		return raftnode.Config{}, err
	}
	if err := f.limits.check(nofile); err != nil {
		return raftnode.Config{}, err
	}
	if err := f.clientTLS.Check("--"); err != nil {
		return raftnode.Config{}, err
	}
	if err := f.peerTLS.Check("--peer-"); err != nil {
		return raftnode.Config{}, err
	}
	if f.dataDir == "" {
		f.dataDir = "raftkv-" + strconv.FormatUint(f.id, 10)
	}
	if f.advertiseClientURL == "" {
		scheme := "http://"
		if f.clientTLS.Enabled() {
			scheme = "https://"
		}
		f.advertiseClientURL = scheme + net.JoinHostPort(f.listenClient, strconv.Itoa(f.port))
	}
	if u, err := url.Parse(f.advertiseClientURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return raftnode.Config{}, fmt.Errorf("--advertise-client-url %q: want http(s)://host:port", f.advertiseClientURL)
	}
	cfg := raftnode.DefaultConfig()
	cfg.Name = f.name
	cfg.ClientURLs = []string{f.advertiseClientURL}
	cfg.ClusterToken = f.clusterToken
	cfg.TickInterval = time.Duration(f.heartbeatMS) * time.Millisecond
	cfg.HeartbeatTicks = 1
	cfg.ElectionTicks = f.electionMS / f.heartbeatMS
	cfg.ID = f.id
	cfg.Peers = strings.Split(f.cluster, ",")
	cfg.Join = f.join
	cfg.ForceNewCluster = f.forceNewCluster
	cfg.DataDir = f.dataDir
	cfg.SnapshotCount = f.snapshotCount
	cfg.SnapshotCatchUpEntries = f.snapshotCatchUpEntries
	cfg.MaxSnapshots = f.maxSnapshots
	cfg.MaxWALs = f.maxWALs
	cfg.RequestTimeout = f.requestTimeout
	cfg.MaxSnapshotBytes = f.maxSnapshotBytes
	cfg.PeerTLS = f.peerTLS
	if err := cfg.Validate(); err != nil {
		return raftnode.Config{}, fmt.Errorf("--id, --cluster: %w", err)
	}
	return cfg, nil
}

func newLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.Encoding = "console"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	zc.Sampling = nil
	return zc.Build()
}

// serve runs a node until a signal, a fatal error, or its removal from the
// cluster.
func serve(f serveFlags) error {
	cfg, err := f.config()
	if err != nil {
		return err
	}
	lg, err := newLogger(f.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = lg.Sync() }()
	cfg.Logger = lg

	// Refuse another member's data dir before anything is opened.
	if err := raftnode.CheckDataDir(lg, cfg.DataDir, cfg.ID); err != nil {
		return err
	}
	peerURL, err := url.Parse(cfg.Peers[cfg.ID-1])
	if err != nil {
		return fmt.Errorf("--cluster: %w", err)
	}
	listenPeer := f.listenPeer
	if listenPeer == "" {
		listenPeer = peerURL.Host
	}
	// The TLS files were checked by config; load them again for use. From
	// now on each handshake reads them again if they changed, so that
	// certificates rotate without a restart (docs/SECURITY.md).
	peerCerts, err := f.peerTLS.NewReloader(lg.Named("peer-tls"))
	if err != nil {
		return fmt.Errorf("peer TLS: %w", err)
	}
	clientCerts, err := f.clientTLS.NewReloader(lg.Named("client-tls"))
	if err != nil {
		return fmt.Errorf("client TLS: %w", err)
	}
	var forwardDialTLS func(ctx context.Context, network, addr string) (net.Conn, error)
	if clientCerts != nil {
		forwardDialTLS = clientCerts.DialTLSContext
	}
	peerFlag := "--cluster (this node's peer URL)"
	if f.listenPeer != "" {
		peerFlag = "--listen-peer"
	}
	peerLn, err := listener.New(listenPeer, peerCerts.ServerConfig())
	if err != nil {
		return listenError(peerFlag, listenPeer, err)
	}
	clientAddr := net.JoinHostPort(f.listenClient, strconv.Itoa(f.port))
	clientLn, err := listener.New(clientAddr, clientCerts.ServerConfig())
	if err != nil {
		peerLn.Close()
		return listenError("--port", clientAddr, err)
	}
	cfg.PeerListener = peerLn
	authStore, err := openAuth(lg, f.authFile, clientLn.Addr(), f.clientTLS.Enabled())
	if err != nil {
		peerLn.Close()
		clientLn.Close()
		return err
	}
	var dashboard fs.FS // nil: off
	if !f.disableUI {
		if dashboard, err = ui.Files(); err != nil {
			peerLn.Close()
			clientLn.Close()
			return fmt.Errorf("the dashboard's files: %w", err)
		}
	}

	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	srv, err := server.Start(server.Config{
		Raft: cfg,
		KV: kvstore.Config{WatchHistory: f.watchHistory, WatchBuffer: f.watchBuffer,
			WatchHistoryBytes: f.limits.watchHistoryBytes},
		API: httpapi.Config{
			MaxKeyBytes:           f.maxKeyBytes,
			MaxRequestBytes:       f.maxRequestBytes,
			RequestTimeout:        f.requestTimeout,
			Version:               version,
			ForwardDialTLS:        forwardDialTLS,
			Auth:                  authStore,
			MaxConcurrentRequests: f.limits.maxConcurrentRequests,
			MaxWatchers:           f.limits.maxWatchers,
			BodyTimeout:           f.limits.bodyTimeout,
			WriteTimeout:          f.limits.writeTimeout,
			EnablePprof:           f.enablePprof,
			UI:                    dashboard,
		},
		ClientListener: clientLn,
		Logger:         lg,
		MaxConnections: f.limits.maxConnections,
		IdleTimeout:    f.limits.idleTimeout,
	})
	if err != nil {
		return err
	}
	lg.Info("raftkv serving",
		zap.Uint64("id", cfg.ID), zap.String("peer-url", peerURL.String()),
		zap.String("client-addr", clientLn.Addr().String()), zap.String("data-dir", cfg.DataDir),
		zap.Int("max-connections", f.limits.maxConnections), zap.Int("max-watchers", f.limits.maxWatchers))

	// SIGHUP reloads the auth file. Without one it does nothing: a daemon
	// does not die of its terminal going away.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for running := true; running; {
		select {
		case <-hup:
			reloadAuth(lg, authStore)
		case <-ctx.Done():
			lg.Info("signal received, shutting down")
			err = srv.Stop()
			running = false
		case <-srv.Done():
			err = srv.Err()
			running = false
		}
	}
	if errors.Is(err, raftnode.ErrRemoved) {
		lg.Info("this member was removed from the cluster; exiting")
		return nil
	}
	if err != nil {
		return err
	}
	lg.Info("stopped")
	return nil
}

// listenError says which flag chose an address that cannot be listened on,
// and for a port in use, what may hold it: a port in the kernel's ephemeral
// range can be taken by any outgoing connection, not only by a server.
func listenError(flag, addr string, err error) error {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s: listen on %s: %w", flag, addr, err)
	}
	hint := "stop what listens there (ss -ltnp shows it), or choose another port"
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	if lo, hi, ok := ephemeralPorts(); ok && port >= lo && port <= hi {
		hint += fmt.Sprintf("; %d lies in the kernel's ephemeral port range %d-%d, where an outgoing connection may hold it for a while: retry, or pick a port below %d", port, lo, hi, lo)
	}
	return fmt.Errorf("%s: %s: %w; %s", flag, addr, syscall.EADDRINUSE, hint)
}

// ephemeralPorts reads the range of local ports Linux gives outgoing
// connections; ok is false elsewhere.
func ephemeralPorts() (lo, hi int, ok bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, false
	}
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil {
		return 0, 0, false
	}
	return lo, hi, true
}

// openAuth loads the auth file, if any, and says what it turned on.
func openAuth(lg *zap.Logger, path string, clientAddr net.Addr, clientTLS bool) (*auth.Store, error) {
	if path == "" {
		return nil, nil
	}
	st, err := auth.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--auth-file: %w", err)
	}
	users, tokens := st.Counts()
	lg.Info("access control on", zap.String("auth-file", path), zap.Int("users", users), zap.Int("tokens", tokens))
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		lg.Warn("the auth file can be read by other users of this machine; its hashes are worth guessing at: chmod 600 it",
			zap.String("auth-file", path), zap.Stringer("mode", fi.Mode().Perm()))
	}
	if tcp, ok := clientAddr.(*net.TCPAddr); ok && !clientTLS && !tcp.IP.IsLoopback() {
		lg.Warn("access control is on but the client API is not served over TLS: passwords and tokens cross the network in the clear; set --cert-file and --key-file",
			zap.Stringer("client-addr", clientAddr))
	}
	return st, nil
}

// reloadAuth reloads the auth file on SIGHUP. A file that cannot be used
// leaves the one in force, and says why.
func reloadAuth(lg *zap.Logger, st *auth.Store) {
	if st == nil {
		lg.Info("SIGHUP: no --auth-file to reload")
		return
	}
	if err := st.Reload(); err != nil {
		lg.Error("auth file not reloaded; the previous one stays in force", zap.Error(err))
		return
	}
	users, tokens := st.Counts()
	lg.Info("auth file reloaded", zap.String("auth-file", st.Path()), zap.Int("users", users), zap.Int("tokens", tokens))
}
