package raftnode

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/raftkv/raftkv/listener"
)

// StateMachine is what the node needs from the application: snapshots of
// everything applied so far.
type StateMachine interface {
	// Capture freezes the current state and returns a function that writes
	// its encoding. The node calls Capture from its Ready loop only after
	// the application has finished every Commit it was sent, so the
	// snapshot covers exactly the log up to the last Commit's Index. Capture
	// must be cheap; write runs on another goroutine while applying goes
	// on, and may be called several times (a snapshot file is written in
	// passes, so that the encoding is never held whole): it must write the
	// same bytes each time.
	Capture() (write func(io.Writer) error)
}

// Config configures a Node. Zero durations and counts take the defaults of
// DefaultConfig.
type Config struct {
	// ID is this member's raft id (> 0).
	ID uint64
	// Peers are the initial cluster's peer URLs; member i+1 has Peers[i].
	// On a restart the member table in the data dir is used instead.
	Peers []string
	// Join starts a member that was added to a running cluster: it
	// bootstraps nothing, asks the peers for the cluster's id, and learns
	// the configuration from the leader.
	Join bool
	// ForceNewCluster makes a member whose cluster lost its quorum for good
	// the only member of that cluster, keeping every entry it had committed
	// (etcd's --force-new-cluster): before raft starts it drops the entries
	// it does not know committed and commits the removal of every other
	// member. Writes that a quorum without this member acknowledged are
	// lost. It needs a data dir with raft state, of a voter; on a member
	// that is already alone it changes nothing, so it is harmless to leave
	// set, but it is meant for one start.
	ForceNewCluster bool
	// ClusterToken distinguishes clusters started with the same peer URLs;
	// the cluster id is derived from it and the initial peers.
	ClusterToken string
	// Name and ClientURLs are what this member publishes about itself.
	Name       string
	ClientURLs []string
	// DataDir holds the WAL and snapshots.
	DataDir string
	// PeerListener serves the raft transport; the node closes it on stop.
	// With PeerTLS it must serve TLS: a listener.Reloader's ServerConfig,
	// so that rotated certificates are served without a restart.
	PeerListener net.Listener
	// PeerTLS, when enabled, is how this member proves itself to its peers
	// and checks them; every peer URL is then https.
	PeerTLS listener.TLSFiles
	// StateMachine supplies snapshots.
	StateMachine StateMachine
	// Logger receives structured logs.
	Logger *zap.Logger
	// Metrics, when set, receives the node's raftkv_* metrics. No other
	// running node may register with it (give each node its own
	// prometheus.Registry); nil keeps the metrics unregistered.
	Metrics prometheus.Registerer

	// SnapshotCount is how many applied entries trigger a snapshot.
	SnapshotCount uint64
	// SnapshotCatchUpEntries is how many entries are kept in memory after a
	// snapshot so that slightly slow followers catch up without one.
	SnapshotCatchUpEntries uint64
	// MaxSnapshots and MaxWALs bound the files kept on disk (0 keeps all).
	MaxSnapshots int
	MaxWALs      int
	// HistoryEntries, when not 0, is how many committed entries a restart
	// hands the state machine again, so that what it derives from recent
	// entries (kvstore's watch history) survives the restart: instead of the
	// newest snapshot, the node loads an older one the data dir still holds
	// with the WAL after it, and the entries between are applied again. It
	// re-applies at most 2*HistoryEntries, fewer when the files do not reach
	// that far back (see history.go).
	HistoryEntries uint64
	// TickInterval is raft's logical clock; HeartbeatTicks and ElectionTicks
	// are counted in it.
	TickInterval   time.Duration
	HeartbeatTicks int
	ElectionTicks  int
	// RequestTimeout bounds a ReadIndex round.
	RequestTimeout time.Duration
	// MaxSnapshotBytes bounds the state machine data of a snapshot received
	// from the leader; a larger one is refused and its file removed. It
	// must exceed the largest state the cluster holds, or a follower that
	// needs a snapshot can never catch up.
	MaxSnapshotBytes int64
	// MaxInflightAppends is how many appends the leader sends a follower
	// before that follower acknowledges the first (raft's MaxInflightMsgs).
	// raft sends an append to every follower for each proposal while this
	// allows: with room for many, each write costs a message to each
	// follower and an acknowledgement back, where with room for one the
	// writes that arrive during a round trip go together in the next
	// append. Measured in docs/PERFORMANCE.md ("What was tried").
	MaxInflightAppends int
}

// DefaultConfig returns the defaults: raftexample's snapshot cadence and
// etcd's timing (100 ms heartbeat, 1 s election timeout).
func DefaultConfig() Config {
	return Config{
		SnapshotCount:          10000,
		SnapshotCatchUpEntries: 5000,
		MaxSnapshots:           5,
		MaxWALs:                5,
		TickInterval:           100 * time.Millisecond,
		HeartbeatTicks:         1,
		ElectionTicks:          10,
		RequestTimeout:         5 * time.Second,
		MaxSnapshotBytes:       DefaultMaxSnapshotBytes,
		MaxInflightAppends:     1,
	}
}

// DefaultMaxSnapshotBytes is 8 GiB, etcd's largest recommended database
// (--quota-backend-bytes): raftkv holds its state in memory, and a node
// with more than that has outgrown what this design is for.
const DefaultMaxSnapshotBytes = 8 << 30

func (c *Config) withDefaults() {
	d := DefaultConfig()
	if c.SnapshotCount == 0 {
		c.SnapshotCount = d.SnapshotCount
	}
	if c.SnapshotCatchUpEntries == 0 {
		c.SnapshotCatchUpEntries = d.SnapshotCatchUpEntries
	}
	if c.TickInterval == 0 {
		c.TickInterval = d.TickInterval
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = d.HeartbeatTicks
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = d.ElectionTicks
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.MaxSnapshotBytes == 0 {
		c.MaxSnapshotBytes = d.MaxSnapshotBytes
	}
	if c.MaxInflightAppends <= 0 {
		c.MaxInflightAppends = d.MaxInflightAppends
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Name == "" {
		c.Name = fmt.Sprintf("raftkv-%d", c.ID)
	}
	if c.ClusterToken == "" {
		c.ClusterToken = DefaultClusterToken
	}
}

// DefaultClusterToken is the cluster token when none is given.
const DefaultClusterToken = "raftkv"

// Validate reports the first problem with c's settings. It needs neither the
// listener nor the state machine, so a command line can be checked before
// anything is opened.
func (c *Config) Validate() error {
	if err := checkClusterList(c.ID, c.Peers); err != nil {
		return err
	}
	for _, p := range c.Peers {
		if err := checkPeerScheme(p, c.PeerTLS.Enabled()); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	if c.DataDir == "" {
		return fmt.Errorf("%w: data dir is empty", ErrInvalidConfig)
	}
	if c.MaxSnapshotBytes < 0 {
		return fmt.Errorf("%w: --max-snapshot-bytes %d must be positive", ErrInvalidConfig, c.MaxSnapshotBytes)
	}
	if c.ElectionTicks <= c.HeartbeatTicks {
		return fmt.Errorf("%w: election timeout must exceed the heartbeat interval", ErrInvalidConfig)
	}
	return nil
}

// checkClusterList reports the first problem with a cluster list and a
// member's id in it: the id must name one of its URLs, each URL must be a
// valid peer URL, and no two may reach the same address.
func checkClusterList(id uint64, peers []string) error {
	if id == 0 {
		return fmt.Errorf("%w: id must be positive", ErrInvalidConfig)
	}
	if id > uint64(len(peers)) {
		return fmt.Errorf("%w: id %d is outside the cluster list of %d peer URLs (member i has the i-th URL)", ErrInvalidConfig, id, len(peers))
	}
	seen := make([]peerAddr, 0, len(peers))
	for i, p := range peers {
		if err := ValidatePeerURL(p); err != nil {
			return fmt.Errorf("%w (cluster entry %d)", err, i+1)
		}
		// Spellings of one IP address ("127.1", "127.0.0.01") count as
		// one; names are not looked up, so that a command line is judged
		// without the network.
		a, err := literalPeerAddr(p)
		if err != nil {
			return fmt.Errorf("%w %s: %w (cluster entry %d)", ErrInvalidPeerURL, p, err, i+1)
		}
		for j, b := range seen {
			switch {
			case a.url == b.url:
				return fmt.Errorf("%w: peers %d and %d share the URL %s", ErrInvalidConfig, j+1, i+1, p)
			case a.sameEndpoint(b):
				return fmt.Errorf("%w: peers %d and %d share an address: %s and %s both reach %s", ErrInvalidConfig, j+1, i+1, b.url, p, a.endpoint(b))
			}
		}
		seen = append(seen, a)
	}
	return nil
}

// checkPeerScheme says why a valid peer URL's scheme does not fit the peer
// TLS setting, if it does not: https exactly when peers use TLS.
func checkPeerScheme(peerURL string, peerTLS bool) error {
	u, err := url.Parse(peerURL)
	https := err == nil && u.Scheme == "https"
	switch {
	case https && !peerTLS:
		return fmt.Errorf("%s: https, but no peer certificate is configured (--peer-cert-file); use http", peerURL)
	case !https && peerTLS:
		return fmt.Errorf("%s: plain http, but peer TLS is configured; use https", peerURL)
	}
	return nil
}
