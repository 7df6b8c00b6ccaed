package raftnode

import "errors"

// Errors returned by Node. The HTTP layer maps them to status codes with
// errors.Is.
var (
	// ErrStopped means the node is shutting down or has stopped.
	ErrStopped = errors.New("raftnode: stopped")
	// ErrNoLeader means the node knows no leader, so it can neither propose
	// nor confirm a read; the client should retry shortly.
	ErrNoLeader = errors.New("raftnode: no leader")
	// ErrProposalDropped means raft refused the proposal (for example during
	// a leader transfer); it was not applied.
	ErrProposalDropped = errors.New("raftnode: proposal dropped")
	// ErrTimeout means a request to raft got no answer in time; for a
	// configuration change the outcome is unknown.
	ErrTimeout = errors.New("raftnode: request timed out")
	// ErrRemoved means this member was removed from the cluster.
	ErrRemoved = errors.New("raftnode: this member was removed from the cluster")
	// ErrIDMismatch means the data dir belongs to another member.
	ErrIDMismatch = errors.New("raftnode: data dir belongs to another member")
	// ErrInvalidConfig means the Config failed validation.
	ErrInvalidConfig = errors.New("raftnode: invalid config")

	// ErrInvalidMemberID means a member id of 0 (raft reserves it).
	ErrInvalidMemberID = errors.New("raftnode: member id must be a positive integer")
	// ErrInvalidPeerURL means a peer URL that is not an absolute http(s) URL
	// with a host and port.
	ErrInvalidPeerURL = errors.New("raftnode: invalid peer URL")
	// ErrMemberExists means the id is already a member.
	ErrMemberExists = errors.New("raftnode: member already exists")
	// ErrPeerURLExists means another member already uses the peer URL.
	ErrPeerURLExists = errors.New("raftnode: peer URL already used by another member")
	// ErrMemberNotFound means the id is not a member.
	ErrMemberNotFound = errors.New("raftnode: member not found")
	// ErrMemberRemoved means the id belonged to a removed member; raft ids
	// cannot be reused.
	ErrMemberRemoved = errors.New("raftnode: member id was removed and cannot be reused")
	// ErrLastVoter means the change would remove the last voting member.
	ErrLastVoter = errors.New("raftnode: cannot remove the last voting member")
	// ErrNotLearner means promoting a member that already votes.
	ErrNotLearner = errors.New("raftnode: member is not a learner")
	// ErrLearnerNotReady means promoting a learner that has not caught up.
	ErrLearnerNotReady = errors.New("raftnode: learner has not caught up with the leader")
	// ErrNotEnoughStarted means the change would leave fewer started voters
	// than a quorum needs.
	ErrNotEnoughStarted = errors.New("raftnode: the change would leave too few started voters for a quorum")
	// ErrConfChangePending means another configuration change is not
	// applied yet.
	ErrConfChangePending = errors.New("raftnode: another configuration change is pending")
	// ErrNotLeader means the request needs the leader; ask it instead.
	ErrNotLeader = errors.New("raftnode: not the leader")
	// ErrNotVoter means leadership cannot go to a learner.
	ErrNotVoter = errors.New("raftnode: member is not a voter")
	// ErrClusterIDMismatch means the peers belong to another cluster.
	ErrClusterIDMismatch = errors.New("raftnode: cluster id mismatch")
)
