package raftnode

import "errors"

// Errors of the package: the node's, and those of its data dir tools
// (SeedDataDir, InspectDataDir). The HTTP layer maps them to status codes with
// errors.Is. Their texts reach users (as the message of an error response,
// or as the line a node that refuses to start prints), so they say what
// happened, and what to do where that is not obvious, without this
// package's name.
var (
	// ErrStopped means the node is shutting down or has stopped.
	ErrStopped = errors.New("the node is shutting down; retry on another node")
	// ErrNoLeader means the node knows no leader, so it can neither propose
	// nor confirm a read; the client should retry shortly.
	ErrNoLeader = errors.New("no leader: the cluster is electing one, or a quorum of its members is down; retry shortly")
	// ErrProposalDropped means raft refused the proposal (for example during
	// a leader transfer); it was not applied.
	ErrProposalDropped = errors.New("raft dropped the proposal (leadership is moving); nothing was applied, retry")
	// ErrTimeout means a request to raft got no answer in time; for a
	// configuration change the outcome is unknown.
	ErrTimeout = errors.New("raft gave no answer in time")
	// ErrRemoved means this member was removed from the cluster.
	ErrRemoved = errors.New("this member was removed from the cluster")
	// ErrIDMismatch means the data dir belongs to another member.
	ErrIDMismatch = errors.New("the data dir is another member's")
	// ErrInvalidConfig means the Config failed validation.
	ErrInvalidConfig = errors.New("invalid configuration")
	// ErrForceNewCluster means Config.ForceNewCluster was refused: the data
	// dir is not one a new cluster can be made from.
	ErrForceNewCluster = errors.New("--force-new-cluster refused")

	// ErrInvalidMemberID means a member id of 0 (raft reserves it).
	ErrInvalidMemberID = errors.New("a member id must be a positive integer")
	// ErrInvalidPeerURL means a peer URL that is not an absolute http(s) URL
	// with a host and port.
	ErrInvalidPeerURL = errors.New("invalid peer URL")
	// ErrMemberExists means the id is already a member.
	ErrMemberExists = errors.New("the member id is in use")
	// ErrPeerURLExists means another member already uses the peer URL.
	ErrPeerURLExists = errors.New("the peer URL is in use")
	// ErrMemberNotFound means the id is not a member.
	ErrMemberNotFound = errors.New("no such member")
	// ErrMemberRemoved means the id belonged to a removed member; raft ids
	// cannot be reused.
	ErrMemberRemoved = errors.New("the member id was removed, and ids are never reused")
	// ErrLastVoter means the change would remove the last voting member.
	ErrLastVoter = errors.New("the last voting member cannot be removed")
	// ErrNotLearner means promoting a member that already votes.
	ErrNotLearner = errors.New("the member is not a learner")
	// ErrLearnerNotReady means promoting a learner that has not caught up.
	ErrLearnerNotReady = errors.New("the learner has not caught up with the leader")
	// ErrNotEnoughStarted means the change would leave fewer started voters
	// than a quorum needs.
	ErrNotEnoughStarted = errors.New("too few started voters")
	// ErrConfChangePending means another configuration change is not
	// applied yet.
	ErrConfChangePending = errors.New("another membership change is still being applied; retry once it is")
	// ErrNotLeader means the request needs the leader; ask it instead.
	ErrNotLeader = errors.New("this node is not the leader")
	// ErrNotVoter means leadership cannot go to a learner.
	ErrNotVoter = errors.New("the member is not a voter")
	// ErrWALDirGone means the WAL directory was removed or replaced while
	// the node ran: what it wrote since is not durable, so it stopped.
	ErrWALDirGone = errors.New("the wal directory was removed while the node ran; nothing written since is durable, so the node stopped (wipe the data dir, remove the member and add it back)")
	// ErrNoData means a data dir that holds no member's WAL (InspectDataDir).
	ErrNoData = errors.New("no raftkv data")
	// ErrDataDirNotEmpty means a data dir to be seeded from a backup
	// already holds something.
	ErrDataDirNotEmpty = errors.New("the data dir is not empty")
	// ErrCorruptWAL means the WAL is damaged somewhere other than a torn
	// final record: cutting it there could drop acknowledged entries, so
	// the member refuses to start.
	ErrCorruptWAL = errors.New("the wal is corrupt")
	// ErrClusterIDMismatch means the peers belong to another cluster.
	ErrClusterIDMismatch = errors.New("the peers belong to another cluster")

	// ErrUnknownSender means a peer-port message whose sender is not a
	// member (or, while this member joins, one of the peers it was started
	// with).
	ErrUnknownSender = errors.New("the sender is not a member of this cluster")
	// ErrWrongRecipient means a peer-port message addressed to another
	// member.
	ErrWrongRecipient = errors.New("the message is addressed to another member")
	// ErrSnapshotNotFromLeader means a snapshot from a member that is not
	// the leader this member follows, or one raft would ignore.
	ErrSnapshotNotFromLeader = errors.New("snapshots are accepted only from the current leader, and only ahead of the commit index")
	// ErrSnapshotTooLarge means a snapshot over Config.MaxSnapshotBytes.
	ErrSnapshotTooLarge = errors.New("the snapshot exceeds --max-snapshot-bytes")
	// ErrBadSnapshot means a snapshot message raftkv never sends.
	ErrBadSnapshot = errors.New("malformed snapshot message")
)
