package raftnode

import (
	"fmt"
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a node's raftkv_* Prometheus metrics. They exist whether or not
// they are registered, so the code that updates them needs no checks. The
// Ready loop only increments counters and observes histograms; the gauges are
// read from the node's atomics at scrape time.
type metrics struct {
	proposalsCommitted prometheus.Counter
	proposalsFailed    prometheus.Counter
	leaderChanges      prometheus.Counter
	snapshotsReceived  prometheus.Counter
	walFsync           prometheus.Histogram
	snapshotDuration   prometheus.Histogram
	snapshotSize       prometheus.Histogram
	peerRefused        *prometheus.CounterVec

	all []prometheus.Collector
}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		proposalsCommitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftkv_proposals_committed_total",
			Help: "Committed commands handed to the state machine by this member (entries from every member, not only its own proposals).",
		}),
		proposalsFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftkv_proposals_failed_total",
			Help: "Proposals and configuration changes raft refused or never received (no leader, dropped, stopping).",
		}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftkv_leader_changes_total",
			Help: "Times this member saw a new leader (a change to no leader is not counted).",
		}),
		snapshotsReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftkv_snapshots_received_total",
			Help: "Snapshots received from the leader and applied, replacing the state machine.",
		}),
		walFsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "raftkv_wal_fsync_duration_seconds",
			Help:    "Latency of WAL writes that end in an fsync (write and fsync together), one per Ready that must be durable.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14), // 1 ms .. 8 s, as etcd's
		}),
		snapshotDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "raftkv_snapshot_duration_seconds",
			Help:    "Time to encode a local snapshot and write it (snapshot file and WAL record).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16), // 1 ms .. 33 s
		}),
		snapshotSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "raftkv_snapshot_size_bytes",
			Help:    "Size of the local snapshots written (state machine and member table).",
			Buckets: prometheus.ExponentialBuckets(1024, 4, 12), // 1 KiB .. 4 GiB
		}),
		peerRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raftkv_peer_refused_total",
			Help: "Messages and snapshots the peer port refused before raft saw them, by reason (unknown_sender, wrong_recipient, removed_sender, snapshot_not_from_leader, snapshot_too_large, bad_snapshot).",
		}, []string{"reason"}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.all = []prometheus.Collector{
		m.proposalsCommitted, m.proposalsFailed, m.leaderChanges, m.snapshotsReceived,
		m.walFsync, m.snapshotDuration, m.snapshotSize, m.peerRefused,
		gauge("raftkv_proposals_pending",
			"Proposals queued for raft or being handed to it: waiting for raft to accept them, not for them to commit.",
			func() float64 { return float64(len(n.proposeC)) + float64(n.proposing.Load()) }),
		gauge("raftkv_is_leader", "1 when this member is the leader, 0 otherwise.",
			func() float64 { return boolValue(n.IsLeader()) }),
		gauge("raftkv_has_leader", "1 when this member knows a leader, 0 otherwise.",
			func() float64 { return boolValue(n.Leader() != 0) }),
		gauge("raftkv_term", "This member's raft term.",
			func() float64 { return float64(n.Term()) }),
		gauge("raftkv_commit_index", "The highest log index this member knows committed, as of its last Ready.",
			func() float64 { return float64(n.Status().Commit) }),
		gauge("raftkv_applied_index", "The highest log index this member has handed to the state machine.",
			func() float64 { return float64(n.applied.Load()) }),
		gauge("raftkv_snapshot_index", "The log index of this member's latest snapshot.",
			func() float64 { return float64(n.Status().Snapshot) }),
		gauge("raftkv_data_dir_bytes", "Bytes of the files under this member's data dir (WAL, snapshots, member table).",
			func() float64 { size, _, _ := DataDirUsage(n.cfg.DataDir); return float64(size) }),
	}
	// The space left where the data dir is: a full disk stops the member
	// (docs/SECURITY.md, Disk failures), so it should be seen coming. NaN
	// when it cannot be read: a missing value, not an empty disk.
	space := func(pick func(free, size uint64) uint64) func() float64 {
		return func() float64 {
			free, size, ok := diskSpace(n.cfg.DataDir)
			if !ok {
				return math.NaN()
			}
			return float64(pick(free, size))
		}
	}
	m.all = append(m.all,
		gauge("raftkv_disk_free_bytes", "Bytes of the data dir's file system free for a process without root's reserve.",
			space(func(free, _ uint64) uint64 { return free })),
		gauge("raftkv_disk_size_bytes", "Size of the file system of the data dir, in bytes.",
			space(func(_, size uint64) uint64 { return size })))
	return m
}

// register registers the metrics with reg as one collector; a nil reg keeps
// them unregistered.
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	if err := reg.Register(m); err != nil {
		return fmt.Errorf("%w: register metrics (is the registerer shared with another node?): %w", ErrInvalidConfig, err)
	}
	return nil
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.all {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.all {
		c.Collect(ch)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
