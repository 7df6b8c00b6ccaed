package raftnode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/raft/v3"
)

// proposeLoop hands proposals and configuration changes to raft one at a
// time; raft batches everything proposed between two Readys into one append
// and one fsync.
func (n *Node) proposeLoop() {
	for {
		select {
		case p := <-n.proposeC:
			data := frameCommandData(p.Data)
			p.Result <- n.propose(func(ctx context.Context) error { return n.node.Propose(ctx, data) })
		case r := <-n.confChangeC:
			r.result <- n.propose(func(ctx context.Context) error { return n.node.ProposeConfChange(ctx, r.cc) })
		case <-n.stopc:
			return
		}
	}
}

// propose hands one proposal to raft. It is counted in
// raftkv_proposals_pending until raft has taken or refused it, and in
// raftkv_proposals_failed_total when refused.
func (n *Node) propose(step func(context.Context) error) (err error) {
	n.proposing.Store(1)
	defer func() {
		n.proposing.Store(0)
		if err != nil {
			n.metrics.proposalsFailed.Inc()
		}
	}()
	if n.lead.current() == raft.None {
		return ErrNoLeader
	}
	// Raft blocks a proposal while it has no leader; give up after an
	// election timeout so that one stuck proposal does not hold up the rest.
	ctx, cancel := context.WithTimeout(context.Background(), n.electionTimeout())
	defer cancel()
	err = step(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrProposalDropped):
		return ErrProposalDropped
	case errors.Is(err, raft.ErrStopped):
		return ErrStopped
	case errors.Is(err, context.DeadlineExceeded):
		return ErrNoLeader
	default:
		return fmt.Errorf("propose: %w", err)
	}
}

func (n *Node) electionTimeout() time.Duration {
	return time.Duration(n.cfg.ElectionTicks) * n.cfg.TickInterval
}

// ElectionTimeout is how long a follower waits for the leader before it
// campaigns.
func (n *Node) ElectionTimeout() time.Duration { return n.electionTimeout() }
