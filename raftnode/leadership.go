package raftnode

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/raft/v3"
)

// leadership is what the member knows of its leader: who leads, at which
// term, since when it has had none, and a channel closed at each change.
// The Ready loop is its only writer (setTerm, setLeader); request
// goroutines, the ReadIndex batcher and the peer guard read it.
type leadership struct {
	self            uint64
	startedAt       time.Time     // the monotonic origin of lost
	electionTimeout time.Duration // for quorumLost
	changes         prometheus.Counter

	leader atomic.Uint64
	term   atomic.Uint64
	lost   atomic.Pointer[leaderLoss] // when and at which term leader last became 0
	mu     sync.Mutex                 // orders setLeader against watch
	change chan struct{}              // closed and replaced when the leader changes
}

// leaderLoss is when (after the start, on the monotonic clock) and at which
// term the node last lost its leader.
type leaderLoss struct {
	after time.Duration
	term  uint64
}

// newLeadership starts without a leader at term.
func newLeadership(self uint64, term uint64, electionTimeout time.Duration, changes prometheus.Counter) *leadership {
	l := &leadership{self: self, startedAt: time.Now(), electionTimeout: electionTimeout, changes: changes,
		change: make(chan struct{})}
	l.term.Store(term)
	l.lost.Store(&leaderLoss{term: term})
	return l
}

// current is the leader's id, raft.None while there is none.
func (l *leadership) current() uint64 { return l.leader.Load() }

// currentTerm is the term the member is in.
func (l *leadership) currentTerm() uint64 { return l.term.Load() }

// isSelf reports whether this member leads.
func (l *leadership) isSelf() bool { return l.leader.Load() == l.self }

// setTerm records the term of a hard state: before the leader of that
// term, so that whoever sees the new leader sees its term too.
func (l *leadership) setTerm(term uint64) { l.term.Store(term) }

// setLeader records a new leader and wakes whoever waits for a change.
func (l *leadership) setLeader(lead uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leader.Store(lead)
	if lead != raft.None {
		l.changes.Inc()
	} else {
		l.lost.Store(&leaderLoss{after: time.Since(l.startedAt), term: l.term.Load()})
	}
	close(l.change)
	l.change = make(chan struct{})
}

// watch returns the current leader (0: none known) and term, and a channel
// closed at the next change of leader.
func (l *leadership) watch() (leader, term uint64, changed <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leader.Load(), l.term.Load(), l.change
}

// quorumLost reports whether the member has known no leader for longer
// than any election takes, without raising its term. An election ends
// within two election timeouts unless votes split, and a split vote raises
// the term; with PreVote a member that cannot reach a quorum never raises
// it.
func (l *leadership) quorumLost() bool {
	lost := l.lost.Load()
	return l.leader.Load() == raft.None && l.term.Load() == lost.term &&
		time.Since(l.startedAt)-lost.after > 2*l.electionTimeout
}
