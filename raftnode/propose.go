package raftnode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// proposeLoop hands proposals and configuration changes to raft; raft
// batches everything proposed between two Readys into one append and one
// fsync.
func (n *Node) proposeLoop() {
	for {
		select {
		case p := <-n.proposeC:
			n.proposeAll(gather(p, n.proposeC, maxProposalBatch))
		case r := <-n.confChangeC:
			r.result <- n.propose(func(ctx context.Context) error { return n.node.ProposeConfChange(ctx, r.cc) })
		case <-n.stopc:
			return
		}
	}
}

// maxProposalBatch bounds the proposals a follower forwards in one message.
const maxProposalBatch = 64

// gather returns first with the proposals queued behind it in c, up to max
// in all, without waiting for more.
func gather(first Proposal, c <-chan Proposal, max int) []Proposal {
	batch := []Proposal{first}
	for len(batch) < max {
		select {
		case p := <-c:
			batch = append(batch, p)
		default:
			return batch
		}
	}
	return batch
}

// proposeAll hands batch to raft. A leader proposes each on its own, with
// Propose, which reports a drop (during a leadership transfer, say) so that
// its writer hears 503 at once. A follower forwards each Propose to the
// leader as a message of its own; several proposals in one message cost
// one message to encode, send, decode and step, and it measured 6% more
// writes at 64 clients (docs/PERFORMANCE.md). raft has no batched Propose
// that reports a drop, so a follower hands the batch to Step, which reports
// none: the one drop a follower's Propose reports is "no leader", which
// propose checks first, and once forwarded a proposal's drop is silent
// anyway; its writer learns the outcome from the leader change or its
// timeout, as it would then.
func (n *Node) proposeAll(batch []Proposal) {
	if len(batch) == 1 || n.lead.isSelf() {
		for _, p := range batch {
			data := frameCommandData(p.Data)
			p.Result <- n.propose(func(ctx context.Context) error { return n.node.Propose(ctx, data) })
		}
		return
	}
	ents := make([]*raftpb.Entry, len(batch))
	for i, p := range batch {
		ents[i] = &raftpb.Entry{Data: frameCommandData(p.Data)}
	}
	err := n.propose(func(ctx context.Context) error {
		return n.node.Step(ctx, &raftpb.Message{Type: raftpb.MsgProp.Enum(), Entries: ents})
	})
	if err != nil {
		n.metrics.proposalsFailed.Add(float64(len(batch) - 1)) // propose counted one
	}
	for _, p := range batch {
		p.Result <- err
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
