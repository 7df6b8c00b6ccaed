package raftnode

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/raft/v3"
	"go.uber.org/zap"
)

// clusterPath is served on the peer port: a joining member asks it for the
// cluster's id and member table before it writes anything.
const clusterPath = "/raftkv/cluster"

// clusterInfo is what clusterPath answers.
type clusterInfo struct {
	ClusterID string   `json:"cluster_id"`
	Members   []Member `json:"members"`
	// Removed are the ids that were removed, which can never come back.
	Removed []uint64 `json:"removed,omitempty"`
}

// ClusterIDFor derives a cluster's id from its initial peer URLs and token, as
// etcd does, so that two clusters started separately have different ids and
// rafthttp refuses messages between them.
func ClusterIDFor(token string, peers []string) uint64 {
	h := sha256.New()
	h.Write([]byte(token))
	for _, p := range slices.Sorted(slices.Values(peers)) {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return binary.BigEndian.Uint64(h.Sum(nil)[:8])
}

// FormatID formats a member or cluster id as etcd does, in hex.
func FormatID(id uint64) string { return strconv.FormatUint(id, 16) }

// initialClusterID returns the id a member with no WAL yet creates its WAL
// with: derived from the initial cluster, or, for a member joining a running
// cluster, asked from the peers. A member that has a WAL keeps the id in it.
func initialClusterID(lg *zap.Logger, cfg *Config) (uint64, error) {
	if walExists(cfg.DataDir) {
		return 0, nil // read from the WAL's metadata
	}
	if !cfg.Join {
		id := ClusterIDFor(cfg.ClusterToken, cfg.Peers)
		return id, checkNotStartedBefore(lg, cfg, id)
	}
	return discoverCluster(lg, cfg)
}

// checkNotStartedBefore refuses to bootstrap a member that its cluster has
// already seen running: that member lost its data dir, and bootstrapping a
// new log under its old id could let it vote again in a term it voted in, or
// count toward a quorum for entries it no longer holds. Peers that cannot be
// reached are skipped: on a first start they may not be up yet.
func checkNotStartedBefore(lg *zap.Logger, cfg *Config, clusterID uint64) error {
	self := cfg.Peers[cfg.ID-1]
	client, err := peerClient(lg, cfg, startedCheckTimeout)
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	errc := make(chan error, len(cfg.Peers))
	asked := 0
	for _, p := range cfg.Peers {
		if p == self {
			continue
		}
		asked++
		go func() {
			info, err := fetchClusterInfo(client, p)
			if err != nil || info.ClusterID != FormatID(clusterID) {
				errc <- nil
				return
			}
			for _, m := range info.Members {
				if m.ID == cfg.ID && m.Started() {
					errc <- fmt.Errorf("%w: member %d already ran in this cluster (as %s sees it) but %s holds no data: its data dir was lost or moved; restore it, or remove the member and add the node back under a new id with --join", ErrInvalidConfig, cfg.ID, p, cfg.DataDir)
					return
				}
			}
			errc <- nil
		}()
	}
	var first error
	for range asked {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// startedCheckTimeout bounds how long a bootstrapping member waits for each
// peer's answer; a peer that is itself starting answers as soon as it serves.
const startedCheckTimeout = 500 * time.Millisecond

// discoverCluster asks the other peers of cfg.Peers for the cluster's id and
// checks that the cluster already added this member with this peer URL.
func discoverCluster(lg *zap.Logger, cfg *Config) (uint64, error) {
	self := cfg.Peers[cfg.ID-1]
	client, err := peerClient(lg, cfg, 2*time.Second)
	if err != nil {
		return 0, err
	}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(cfg.RequestTimeout)
	var errs []error
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		for _, p := range cfg.Peers {
			if p == self {
				continue
			}
			info, err := fetchClusterInfo(client, p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			id, err := strconv.ParseUint(info.ClusterID, 16, 64)
			if err != nil {
				return 0, fmt.Errorf("%s answered a bad cluster id %q", p, info.ClusterID)
			}
			// A peer that has not applied this member's addition yet does
			// not list it; another peer, or a later round, may.
			i := slices.IndexFunc(info.Members, func(m Member) bool { return m.ID == cfg.ID })
			if i < 0 && slices.Contains(info.Removed, cfg.ID) {
				return 0, fmt.Errorf("%w: member %d was removed from the cluster (as %s sees it) and raft never lets an id come back: add the node under a new id (raftkv member add %s) and start it with that --id", ErrInvalidConfig, cfg.ID, p, self)
			}
			if i < 0 {
				errs = append(errs, fmt.Errorf("%w: member %d is not in the cluster's member table (as %s sees it); add it first (POST /%d with its peer URL)", ErrInvalidConfig, cfg.ID, p, cfg.ID))
				continue
			}
			if !slices.Contains(info.Members[i].PeerURLs, self) {
				return 0, fmt.Errorf("%w: the cluster knows member %d at %v, not %s", ErrInvalidConfig, cfg.ID, info.Members[i].PeerURLs, self)
			}
			lg.Info("joining cluster", zap.String("cluster-id", info.ClusterID), zap.String("via", p))
			return id, nil
		}
		time.Sleep(min(time.Duration(attempt+1)*100*time.Millisecond, time.Second)) // backoff between rounds of dials
	}
	if len(errs) > 0 {
		return 0, fmt.Errorf("cannot join the cluster: %w", errs[len(errs)-1])
	}
	return 0, errors.New("cannot join the cluster: no other peer in the cluster list")
}

// peerClient is an HTTP client for the peers' ports, with the peer TLS
// settings as the files hold them at each connection; each request is
// bounded by timeout.
func peerClient(lg *zap.Logger, cfg *Config, timeout time.Duration) (*http.Client, error) {
	certs, err := cfg.PeerTLS.NewReloader(lg.Named("peer-client-tls"))
	if err != nil {
		return nil, fmt.Errorf("%w: peer TLS: %w", ErrInvalidConfig, err)
	}
	transport := &http.Transport{Proxy: nil}
	if certs != nil {
		transport.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			// net/http lets a dial outlive the request that started it.
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			return certs.DialTLSContext(ctx, network, addr)
		}
	}
	return &http.Client{Timeout: timeout, Transport: transport}, nil
}

// fetchClusterInfo asks the peer at peerURL for the cluster's id and members.
func fetchClusterInfo(client *http.Client, peerURL string) (clusterInfo, error) {
	var info clusterInfo
	resp, err := client.Get(strings.TrimSuffix(peerURL, "/") + clusterPath)
	if err != nil {
		return info, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return info, fmt.Errorf("%s: status %d", peerURL, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&info); err != nil {
		return info, fmt.Errorf("%s: %w", peerURL, err)
	}
	return info, nil
}

// peerHandler serves the peer port: rafthttp's transport, and clusterPath.
func (n *Node) peerHandler() http.Handler {
	mux := http.NewServeMux()
	raftHandler := n.guardPeer(n.transport.Handler())
	mux.Handle("/raft", raftHandler)
	mux.Handle("/raft/", raftHandler)
	mux.HandleFunc("GET "+clusterPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		view := n.view.Load()
		info := clusterInfo{ClusterID: FormatID(n.clusterID), Members: view.list(), Removed: slices.Sorted(maps.Keys(view.removed))}
		_ = json.NewEncoder(w).Encode(info)
	})
	return mux
}

// publishAttributes proposes this member's name and client URLs until the
// member table shows them, so that the cluster knows how to reach its
// client API (etcd publishes member attributes the same way).
func (n *Node) publishAttributes() {
	a := attributes{ID: n.cfg.ID, Name: n.cfg.Name, ClientURLs: n.cfg.ClientURLs}
	data := a.marshal()
	retry := time.NewTicker(n.electionTimeout())
	defer retry.Stop()
	for {
		if m, ok := n.view.Load().members[n.cfg.ID]; ok && m.Name == a.Name && slices.Equal(m.ClientURLs, a.ClientURLs) {
			return
		}
		lead, _, changed := n.LeaderChanged()
		if _, ok := n.view.Load().members[n.cfg.ID]; ok && lead != raft.None {
			ctx, cancel := context.WithTimeout(context.Background(), n.electionTimeout())
			if err := n.node.Propose(ctx, data); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				n.lg.Debug("publish member attributes", zap.Error(err))
			}
			cancel()
		}
		// Try again when a leader appears, or after a while if the
		// proposal was lost.
		select {
		case <-changed:
		case <-retry.C:
		case <-n.stopc:
			return
		}
	}
}

// checkStoredPeerURLs compares the member table a restarting member keeps in
// its data dir with how it was started. On a restart that table, not the
// cluster list, says where every member is (the list only gives this
// member's own URL). A member started with another URL for itself listens
// where no peer dials it; one whose peer TLS setting does not fit the stored
// URLs' scheme dials its peers, and is dialed, in a way nobody can answer.
// Either way the cluster just never elects a leader, with nothing in the logs
// but failed handshakes, so the start fails instead, saying what is stored,
// what was given and what to do.
//
// A table without this member (one that joined and had not yet received its
// own addition) is checked for the scheme only.
func checkStoredPeerURLs(lg *zap.Logger, cfg *Config, clusterID uint64, stored *membership) error {
	given := cfg.Peers[cfg.ID-1]
	self, known := stored.members[cfg.ID]
	members := stored.list()
	if known {
		// This member first: it is the one the command line names.
		members = append([]Member{self}, members...)
	}
	peerTLS := cfg.PeerTLS.Enabled()
	for _, m := range members {
		for _, u := range m.PeerURLs {
			if checkPeerScheme(u, peerTLS) != nil {
				return storedSchemeError(cfg, m.ID, u, peerTLS)
			}
		}
	}
	if !known || slices.Contains(self.PeerURLs, given) {
		return nil
	}
	if peer, ok := confirmPeerURL(lg, cfg, clusterID, stored, given); ok {
		lg.Info("this member's peer URL was changed while it was down",
			zap.Strings("stored", self.PeerURLs), zap.String("url", given), zap.String("confirmed-by", peer))
		return nil
	}
	return fmt.Errorf("%w: %s stores member %d's peer URL as %s, not %s as the cluster list gives, and no running peer knows it at the new URL: a restarted member keeps the member table of its data dir; start the node with the stored URL, or move it first with `raftkv member update %d %s` while a quorum runs, or, for a throwaway cluster, stop every node and wipe the data dirs (make clean) to start a new one",
		ErrInvalidConfig, cfg.DataDir, cfg.ID, strings.Join(self.PeerURLs, ","), given, cfg.ID, given)
}

// storedSchemeError says that the stored URL u of member id does not fit the
// peer TLS setting. raftkv cannot change a member's URL to another scheme
// (the cluster refuses an https URL without peer TLS and the reverse), so
// the remedies are to start as before or to start over.
func storedSchemeError(cfg *Config, id uint64, u string, peerTLS bool) error {
	stored := fmt.Sprintf("member %d: %s", id, u)
	if given := cfg.Peers[cfg.ID-1]; id == cfg.ID && given != u {
		stored += "; the cluster list gives " + given
	}
	scheme, setting, start := "https", "off", "with peer TLS"
	if peerTLS {
		scheme, setting, start = "plain http", "on", "without peer TLS"
	}
	return fmt.Errorf("%w: %s holds a member table with %s peer URLs (%s) but peer TLS is %s: a restarted member keeps the member table of its data dir, and its URLs cannot change scheme; start the node %s and with the stored URLs, or, for a throwaway cluster, stop every node and wipe the data dirs (make clean) to start a new one",
		ErrInvalidConfig, cfg.DataDir, scheme, stored, setting, start)
}

// confirmURLTimeout bounds each peer's answer to confirmPeerURL.
const confirmURLTimeout = 2 * time.Second

// confirmPeerURL asks the other stored members, all at once, whether the
// cluster knows member cfg.ID at url. A member update made while the member
// was down is the one legitimate reason for its stored URL to be out of
// date; the member learns of it from the log once it runs. It returns the
// peer that confirmed.
func confirmPeerURL(lg *zap.Logger, cfg *Config, clusterID uint64, stored *membership, url string) (string, bool) {
	client, err := peerClient(lg, cfg, confirmURLTimeout)
	if err != nil {
		return "", false
	}
	defer client.CloseIdleConnections()
	answers := make(chan string, len(stored.members))
	asked := 0
	for _, m := range stored.list() {
		if m.ID == cfg.ID || len(m.PeerURLs) == 0 {
			continue
		}
		asked++
		go func() {
			for _, p := range m.PeerURLs {
				info, err := fetchClusterInfo(client, p)
				if err != nil || info.ClusterID != FormatID(clusterID) {
					continue
				}
				i := slices.IndexFunc(info.Members, func(mem Member) bool { return mem.ID == cfg.ID })
				if i >= 0 && slices.Contains(info.Members[i].PeerURLs, url) {
					answers <- p
					return
				}
			}
			answers <- ""
		}()
	}
	// Every answer is awaited, so that no goroutine outlives the check.
	confirmedBy := ""
	for range asked {
		if p := <-answers; p != "" && confirmedBy == "" {
			confirmedBy = p
		}
	}
	return confirmedBy, confirmedBy != ""
}
