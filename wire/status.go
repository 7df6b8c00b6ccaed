package wire

// Status is one member's view of itself and of the cluster: the answer to
// GET /v1/status (docs/API.md, "Status").
type Status struct {
	ID        uint64 `json:"id"`
	Name      string `json:"name"`
	Version   string `json:"version"`
	ClusterID string `json:"cluster_id"`
	// RaftState is leader, follower, candidate, pre-candidate or learner.
	RaftState     string  `json:"raft_state"`
	Leader        uint64  `json:"leader"`
	Term          uint64  `json:"term"`
	CommitIndex   uint64  `json:"commit_index"`
	AppliedIndex  uint64  `json:"applied_index"`
	SnapshotIndex uint64  `json:"snapshot_index"`
	Keys          uint64  `json:"keys"`
	Revision      uint64  `json:"revision"`
	Watchers      int     `json:"watchers"`
	DataDirBytes  int64   `json:"data_dir_bytes"`
	WALFiles      int     `json:"wal_files"`
	SnapshotFiles int     `json:"snapshot_files"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	// Fault, when set, is what keeps the member from serving safely: a
	// disk failure it is stopping for, or a snapshot it cannot store.
	Fault string `json:"fault,omitempty"`
	// StateHash (with ?hash=true) is a SHA-256 of the member's store at
	// HashRevision.
	StateHash    string `json:"state_hash,omitempty"`
	HashRevision uint64 `json:"hash_revision,omitempty"`
}
