// Package testcluster runs real raftkv servers in-process for tests. Every
// member is a server.Server with its own data dir (a real WAL and snapshot
// files), loopback listeners on port 0 and a zaptest logger; members talk over
// rafthttp exactly as separate processes would. Clients reach them over HTTP,
// as curl would.
//
// The methods that start, stop or reconfigure members, and the waits, must be
// called from the test's goroutine: they fail the test when something goes
// wrong. Put and Get return errors instead, so tests can assert on them; they
// may run on other goroutines while no member is being started or stopped.
package testcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/raftkv/raftkv/auth"
	"github.com/raftkv/raftkv/httpapi"
	"github.com/raftkv/raftkv/internal/testcerts"
	"github.com/raftkv/raftkv/kvstore"
	"github.com/raftkv/raftkv/listener"
	"github.com/raftkv/raftkv/raftnode"
	"github.com/raftkv/raftkv/server"
	"github.com/raftkv/raftkv/ui"
)

// Defaults for the zero values of Config. Raft ticks five times faster than
// raftnode.DefaultConfig, so that an election takes a fraction of a second,
// yet slowly enough that -race on two cores does not miss heartbeats.
const (
	DefaultTickInterval   = 20 * time.Millisecond
	DefaultElectionTicks  = 10
	DefaultWaitTimeout    = 15 * time.Second
	DefaultRequestTimeout = 5 * time.Second
	rebindTimeout         = 3 * time.Second
)

// Config configures a cluster. Zero values take the defaults above or, for
// the snapshot settings, raftnode.DefaultConfig's, as the command does.
type Config struct {
	// Size is the number of initial members, with ids 1..Size.
	Size int

	SnapshotCount          uint64
	SnapshotCatchUpEntries uint64
	MaxSnapshots           int
	MaxWALs                int
	// MaxSnapshotBytes is the members' --max-snapshot-bytes (zero: the
	// default).
	MaxSnapshotBytes int64

	TickInterval  time.Duration
	ElectionTicks int
	// WaitTimeout bounds every wait of the harness.
	WaitTimeout time.Duration
	// RequestTimeout is the members' --request-timeout.
	RequestTimeout time.Duration
	// WatchHistory and WatchBuffer are the members' watch limits (zero:
	// kvstore's defaults).
	WatchHistory int
	WatchBuffer  int
	// LogLevel is the zaptest level; the zero value is Info.
	LogLevel zapcore.Level
	// TLS, when set, makes every member serve its peer and client ports
	// over TLS with certificates from it, requiring client certificates on
	// both; the harness's own requests present TLS.ClientCert.
	TLS *testcerts.Set
	// PeerAllowedCNs is the members' --peer-cert-allowed-cn (with TLS).
	PeerAllowedCNs []string
	// Auth, when set, turns access control on in every member (the
	// members share it, as they would share one --auth-file).
	Auth *auth.Store
}

func (c *Config) withDefaults() {
	d := raftnode.DefaultConfig()
	if c.SnapshotCount == 0 {
		c.SnapshotCount = d.SnapshotCount
	}
	if c.SnapshotCatchUpEntries == 0 {
		c.SnapshotCatchUpEntries = d.SnapshotCatchUpEntries
	}
	if c.MaxSnapshots == 0 {
		c.MaxSnapshots = d.MaxSnapshots
	}
	if c.MaxWALs == 0 {
		c.MaxWALs = d.MaxWALs
	}
	if c.TickInterval == 0 {
		c.TickInterval = DefaultTickInterval
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = DefaultElectionTicks
	}
	if c.WaitTimeout == 0 {
		c.WaitTimeout = DefaultWaitTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
}

// member is one member's fixed identity and, while it runs, its server.
type member struct {
	id      uint64
	dataDir string
	peerURL string
	join    bool
	// removed is set once the test removed the member: stopping with
	// raftnode.ErrRemoved is then expected rather than a failure.
	removed bool
	// awaited is set while WaitStopped waits for the member to stop: its
	// stopping is then what the test expects, not a crash.
	awaited bool

	// peerCerts and clientCerts serve the member's TLS files (nil without
	// Config.TLS).
	peerCerts, clientCerts *listener.Reloader

	peerLn    net.Listener // bound but not yet handed to a server
	srv       *server.Server
	clientURL string
}

// Cluster is a set of in-process raftkv members.
type Cluster struct {
	t       testing.TB
	cfg     Config
	baseDir string
	members []*member // members[i] has id i+1
	http    *http.Client
}

// New starts cfg.Size members and stops them all when the test ends. It does
// not wait for a leader; see WaitLeader.
func New(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	cfg.withDefaults()
	if cfg.Size < 1 {
		t.Fatalf("testcluster: size %d: need at least one member", cfg.Size)
	}
	c := &Cluster{
		t:   t,
		cfg: cfg,
		// t.TempDir registers the removal of its directories on its first
		// call; calling it before the Cleanup below makes that Cleanup run
		// first, so the servers stop before their directories go.
		baseDir: t.TempDir(),
		// One connection per request, as curl does. Kept-alive connections
		// would outlive the tests, and one the transport dialled but never
		// used holds up the server's Shutdown for five seconds (net/http
		// treats a connection in StateNew as active until then).
		http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
	}
	if cfg.TLS != nil {
		tlsConfig, err := listener.TLSFiles{CertFile: cfg.TLS.ClientCert, KeyFile: cfg.TLS.ClientKey, TrustedCAFile: cfg.TLS.CAFile}.ClientConfig()
		if err != nil {
			t.Fatalf("testcluster: client TLS: %v", err)
		}
		c.http.Transport.(*http.Transport).TLSClientConfig = tlsConfig
	}
	t.Cleanup(c.cleanup)
	// Every peer URL must be known before the first member starts, so all
	// peer listeners are bound first.
	for range cfg.Size {
		if _, err := c.newMember(false); err != nil {
			t.Fatal(err)
		}
	}
	// Members start together, as a real cluster's processes do: a
	// bootstrapping member asks its peers whether it ran before, and a peer
	// answers once it serves.
	errs := make([]error, len(c.members))
	var wg sync.WaitGroup
	for i, m := range c.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.start(m)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("testcluster: start member %d: %v", c.members[i].id, err)
		}
	}
	return c
}

// newMember binds a peer listener on a free loopback port for the next id.
func (c *Cluster) newMember(join bool) (*member, error) {
	id := uint64(len(c.members) + 1)
	lg := c.logger(id)
	// Each member reads its TLS files as a raftkv process does: once at
	// the start, then at each handshake if they changed.
	peerCerts, err := c.peerTLS().NewReloader(lg.Named("peer-tls"))
	if err != nil {
		return nil, fmt.Errorf("testcluster: peer TLS of member %d: %w", id, err)
	}
	clientCerts, err := c.clientTLS().NewReloader(lg.Named("client-tls"))
	if err != nil {
		return nil, fmt.Errorf("testcluster: client TLS of member %d: %w", id, err)
	}
	ln, err := listener.New("127.0.0.1:0", peerCerts.ServerConfig())
	if err != nil {
		return nil, fmt.Errorf("testcluster: peer listener for member %d: %w", id, err)
	}
	m := &member{
		id:          id,
		dataDir:     filepath.Join(c.baseDir, "raftkv-"+strconv.FormatUint(id, 10)),
		peerURL:     c.scheme() + ln.Addr().String(),
		join:        join,
		peerCerts:   peerCerts,
		clientCerts: clientCerts,
		peerLn:      ln,
	}
	c.members = append(c.members, m)
	return m, nil
}

// logger is member id's logger.
func (c *Cluster) logger(id uint64) *zap.Logger {
	return zaptest.NewLogger(c.t, zaptest.Level(c.cfg.LogLevel)).Named("m" + strconv.FormatUint(id, 10))
}

func (c *Cluster) peerURLs() []string {
	urls := make([]string, len(c.members))
	for i, m := range c.members {
		urls[i] = m.peerURL
	}
	return urls
}

// start starts m on the listener bound for it, wiring it as cmd/raftkv does.
func (c *Cluster) start(m *member) error {
	peerLn := m.peerLn
	m.peerLn = nil
	if peerLn == nil {
		return errors.New("testcluster: no peer listener")
	}
	lg := c.logger(m.id)
	if err := raftnode.CheckDataDir(lg, m.dataDir, m.id); err != nil {
		peerLn.Close()
		return err
	}
	dashboard, err := ui.Files()
	if err != nil {
		peerLn.Close()
		return err
	}
	clientLn, err := listener.New("127.0.0.1:0", m.clientCerts.ServerConfig())
	if err != nil {
		peerLn.Close()
		return fmt.Errorf("testcluster: client listener: %w", err)
	}
	var forwardDialTLS func(ctx context.Context, network, addr string) (net.Conn, error)
	if m.clientCerts != nil {
		forwardDialTLS = m.clientCerts.DialTLSContext
	}
	rc := raftnode.DefaultConfig()
	rc.ID = m.id
	rc.Peers = c.peerURLs()
	rc.Join = m.join
	rc.DataDir = m.dataDir
	rc.PeerListener = peerLn
	rc.SnapshotCount = c.cfg.SnapshotCount
	rc.SnapshotCatchUpEntries = c.cfg.SnapshotCatchUpEntries
	rc.MaxSnapshots = c.cfg.MaxSnapshots
	rc.MaxWALs = c.cfg.MaxWALs
	if c.cfg.MaxSnapshotBytes != 0 {
		rc.MaxSnapshotBytes = c.cfg.MaxSnapshotBytes
	}
	rc.TickInterval = c.cfg.TickInterval
	rc.ElectionTicks = c.cfg.ElectionTicks
	rc.RequestTimeout = c.cfg.RequestTimeout
	rc.PeerTLS = c.peerTLS()
	rc.ClientURLs = []string{c.scheme() + clientLn.Addr().String()}
	srv, err := server.Start(server.Config{
		Raft: rc,
		KV:   kvstore.Config{WatchHistory: c.cfg.WatchHistory, WatchBuffer: c.cfg.WatchBuffer},
		API: httpapi.Config{RequestTimeout: c.cfg.RequestTimeout, ForwardDialTLS: forwardDialTLS, Auth: c.cfg.Auth,
			UI: dashboard},
		ClientListener: clientLn,
		Logger:         lg,
	})
	if err != nil {
		return err // Start closed both listeners
	}
	m.srv = srv
	m.clientURL = c.scheme() + clientLn.Addr().String()
	return nil
}

// peerTLS and clientTLS are the members' TLS settings: none without
// Config.TLS.
func (c *Cluster) peerTLS() listener.TLSFiles {
	if c.cfg.TLS == nil {
		return listener.TLSFiles{}
	}
	files := c.clientTLS()
	files.AllowedCNs = c.cfg.PeerAllowedCNs
	return files
}

func (c *Cluster) clientTLS() listener.TLSFiles {
	if c.cfg.TLS == nil {
		return listener.TLSFiles{}
	}
	return listener.TLSFiles{CertFile: c.cfg.TLS.NodeCert, KeyFile: c.cfg.TLS.NodeKey, TrustedCAFile: c.cfg.TLS.CAFile, ClientCertAuth: true}
}

// scheme is the scheme of the members' URLs, with its "://".
func (c *Cluster) scheme() string {
	if c.cfg.TLS == nil {
		return "http://"
	}
	return "https://"
}

// member returns the member with id, failing the test if there is none.
func (c *Cluster) member(id uint64) *member {
	c.t.Helper()
	if id == 0 || id > uint64(len(c.members)) {
		c.t.Fatalf("testcluster: no member %d", id)
	}
	return c.members[id-1]
}

// running returns the member with id, failing the test if it is stopped.
func (c *Cluster) running(id uint64) *member {
	c.t.Helper()
	m := c.member(id)
	if m.srv == nil {
		c.t.Fatalf("testcluster: member %d is not running", id)
	}
	return m
}

// Running returns the ids of the members whose servers were started and not
// stopped through the harness, in order.
func (c *Cluster) Running() []uint64 {
	var ids []uint64
	for _, m := range c.members {
		if m.srv != nil {
			ids = append(ids, m.id)
		}
	}
	return ids
}

// Server returns member id's running server.
func (c *Cluster) Server(id uint64) *server.Server {
	c.t.Helper()
	return c.running(id).srv
}

// Node returns member id's running raft node.
func (c *Cluster) Node(id uint64) *raftnode.Node {
	c.t.Helper()
	return c.running(id).srv.Node()
}

// DataDir returns member id's data dir; it survives Stop and Restart.
func (c *Cluster) DataDir(id uint64) string {
	c.t.Helper()
	return c.member(id).dataDir
}

// PeerURL returns member id's peer URL; it survives Stop and Restart.
func (c *Cluster) PeerURL(id uint64) string {
	c.t.Helper()
	return c.member(id).peerURL
}

// ClientURL returns member id's client URL; it changes on Restart.
func (c *Cluster) ClientURL(id uint64) string {
	c.t.Helper()
	return c.running(id).clientURL
}

// Stop stops member id and returns why its server ended: nil after a clean
// stop, or the reason it had already stopped on its own.
func (c *Cluster) Stop(id uint64) error {
	c.t.Helper()
	m := c.running(id)
	err := m.srv.Stop()
	m.srv = nil
	return err
}

// Restart starts stopped member id again from its data dir, on the peer
// address the member table knows, and fails the test if it cannot start.
func (c *Cluster) Restart(id uint64) {
	c.t.Helper()
	if err := c.TryRestart(id); err != nil {
		c.t.Fatalf("testcluster: restart member %d: %v", id, err)
	}
}

// TryRestart is Restart for starts that are expected to fail: it returns
// the start's error instead of failing the test.
func (c *Cluster) TryRestart(id uint64) error {
	c.t.Helper()
	m := c.member(id)
	if m.srv != nil {
		c.t.Fatalf("testcluster: member %d is already running", id)
	}
	if m.peerLn == nil {
		ln, err := c.rebind(m)
		if err != nil {
			return err
		}
		m.peerLn = ln
	}
	return c.start(m)
}

// rebind listens on m's peer URL again. The stopped server released it, but
// the kernel may take a moment.
func (c *Cluster) rebind(m *member) (net.Listener, error) {
	u, err := url.Parse(m.peerURL)
	if err != nil {
		return nil, err
	}
	deadline := time.NewTimer(rebindTimeout)
	defer deadline.Stop()
	retry := time.NewTicker(20 * time.Millisecond)
	defer retry.Stop()
	for {
		ln, err := listener.New(u.Host, m.peerCerts.ServerConfig())
		if err == nil {
			return ln, nil
		}
		select {
		case <-retry.C:
		case <-deadline.C:
			return nil, fmt.Errorf("testcluster: rebind %s: %w", u.Host, err)
		}
	}
}

// AddMember asks member via to add the next member id (which it returns)
// with a fresh peer URL, through POST /{id}. Start it with StartJoining.
func (c *Cluster) AddMember(via uint64) uint64 {
	c.t.Helper()
	m, err := c.newMember(true)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.do(via, http.MethodPost, strconv.FormatUint(m.id, 10), m.peerURL, http.StatusNoContent, nil); err != nil {
		c.t.Fatalf("testcluster: add member %d via %d: %v", m.id, via, err)
	}
	return m.id
}

// ReserveMember allocates the next member id and a peer URL for a member the
// test adds itself (for example as a learner); start it with StartJoining.
func (c *Cluster) ReserveMember() (id uint64, peerURL string) {
	c.t.Helper()
	m, err := c.newMember(true)
	if err != nil {
		c.t.Fatal(err)
	}
	return m.id, m.peerURL
}

// StartJoining starts a member that AddMember added, with Join set and the
// cluster list extended by its peer URL.
func (c *Cluster) StartJoining(id uint64) {
	c.t.Helper()
	m := c.member(id)
	if !m.join || m.srv != nil {
		c.t.Fatalf("testcluster: member %d was not added with AddMember or is running", id)
	}
	if err := c.start(m); err != nil {
		c.t.Fatalf("testcluster: start joining member %d: %v", id, err)
	}
}

// TryStartJoining is StartJoining that returns the error instead of failing
// the test.
func (c *Cluster) TryStartJoining(id uint64) error {
	c.t.Helper()
	return c.start(c.member(id))
}

// RemoveMember asks member via to remove member id through DELETE /{id}. The
// removed member's server stops on its own; wait for its Done.
func (c *Cluster) RemoveMember(via, id uint64) {
	c.t.Helper()
	m := c.member(id)
	if err := c.do(via, http.MethodDelete, strconv.FormatUint(id, 10), "", http.StatusNoContent, nil); err != nil {
		c.t.Fatalf("testcluster: remove member %d via %d: %v", id, via, err)
	}
	m.removed = true
}

// WaitStopped waits for member id's server to stop on its own (after its
// removal, say), forgets it, and returns why it stopped.
func (c *Cluster) WaitStopped(id uint64) error {
	c.t.Helper()
	m := c.running(id)
	// Without this, the member could stop between WaitFor's check of it and
	// its check for crashed members, and count as crashed.
	m.awaited = true
	defer func() { m.awaited = false }()
	c.WaitFor(fmt.Sprintf("member %d stops on its own", id), func() error {
		select {
		case <-m.srv.Done():
			return nil
		default:
			return errors.New("still running")
		}
	})
	err := m.srv.Err()
	m.srv = nil
	return err
}

// cleanup stops every running member and reports the ones that had stopped
// on their own for an unexpected reason.
func (c *Cluster) cleanup() {
	for _, m := range c.members {
		if m.peerLn != nil {
			m.peerLn.Close()
			m.peerLn = nil
		}
		if m.srv == nil {
			continue
		}
		err := m.srv.Stop()
		m.srv = nil
		if err != nil && !(m.removed && errors.Is(err, raftnode.ErrRemoved)) {
			c.t.Errorf("testcluster: member %d had stopped: %v", m.id, err)
		}
	}
	c.http.CloseIdleConnections() // none are kept; this is belt and braces
}

// WaitFor polls cond until it returns nil and fails the test with cond's
// last error if that does not happen within the cluster's WaitTimeout. It
// fails at once if a member that was not removed stops on its own, since
// that is a failure of its own and most waits could then only time out.
func (c *Cluster) WaitFor(what string, cond func() error) {
	c.t.Helper()
	deadline := time.NewTimer(c.cfg.WaitTimeout)
	defer deadline.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if m := c.crashed(); m != nil {
			c.t.Fatalf("testcluster: %s: member %d stopped on its own: %v", what, m.id, m.srv.Err())
		}
		select {
		case <-poll.C:
		case <-deadline.C:
			c.t.Fatalf("testcluster: %s: not within %v: %v", what, c.cfg.WaitTimeout, err)
		}
	}
}

// crashed returns a member that stopped although the harness did not stop
// it and the test did not remove it, or nil.
func (c *Cluster) crashed() *member {
	for _, m := range c.members {
		if m.srv == nil || m.removed || m.awaited {
			continue
		}
		select {
		case <-m.srv.Done():
			return m
		default:
		}
	}
	return nil
}

// WaitLeader waits until every running member names the same leader, a
// running member that knows it leads, and returns its id.
func (c *Cluster) WaitLeader() uint64 {
	c.t.Helper()
	var leader uint64
	c.WaitFor("wait for a leader", func() error {
		leader = 0
		for _, m := range c.members {
			if m.srv == nil {
				continue
			}
			l := m.srv.Node().Leader()
			switch {
			case l == 0:
				return fmt.Errorf("member %d knows no leader", m.id)
			case leader != 0 && l != leader:
				return fmt.Errorf("members disagree: leader %d and %d", leader, l)
			}
			leader = l
		}
		if leader == 0 {
			return errors.New("no member is running")
		}
		if !slices.Contains(c.Running(), leader) {
			return fmt.Errorf("leader %d is not running", leader)
		}
		if st := c.members[leader-1].srv.Node().Status(); st.RaftState != raft.StateLeader.String() {
			return fmt.Errorf("member %d is named leader but is %s", leader, st.RaftState)
		}
		// Ready as an operator sees it: the leader knows every running
		// member's client URL (needed to forward requests to the leader).
		for _, mem := range c.members[leader-1].srv.Node().Members() {
			if slices.Contains(c.Running(), mem.ID) && !mem.Started() {
				return fmt.Errorf("member %d has not published itself yet", mem.ID)
			}
		}
		return nil
	})
	return leader
}

// WaitApplied waits until the state machine of each of ids (every running
// member when none are given) has applied index, so that serializable reads
// there see every write up to it, and until the member's Status says so too:
// the raft loop publishes its status after the state machine applied, so a
// test that reads Status after this sees the snapshot that got it there.
func (c *Cluster) WaitApplied(index uint64, ids ...uint64) {
	c.t.Helper()
	if len(ids) == 0 {
		ids = c.Running()
	}
	for _, id := range ids {
		kv, n := c.Server(id).KV(), c.Node(id)
		c.WaitFor(fmt.Sprintf("member %d applies index %d", id, index), func() error {
			if got := kv.Applied(); got < index {
				return fmt.Errorf("applied %d", got)
			}
			if st := n.Status(); st.Applied < index {
				return fmt.Errorf("status reports applied %d", st.Applied)
			}
			return nil
		})
	}
}

// WaitFollow waits until every running member knows leader as the leader.
func (c *Cluster) WaitFollow(leader uint64) {
	c.t.Helper()
	for _, id := range c.Running() {
		c.WaitFor(fmt.Sprintf("member %d to follow %d", id, leader), func() error {
			if lead := c.Node(id).Leader(); lead != leader {
				return fmt.Errorf("leader %d", lead)
			}
			return nil
		})
	}
}
