package raftnode

import (
	"context"
	"encoding/binary"
	"time"

	"go.etcd.io/raft/v3"
)

// readIndexRetry is how long a ReadIndex request waits for its answer before
// it is sent again; raft drops it silently while leadership is changing.
const readIndexRetry = 500 * time.Millisecond

// readBatch is one ReadIndex round shared by every read that arrived while
// the previous round was in flight.
type readBatch struct {
	done  chan struct{}
	index uint64
	err   error
}

// ReadIndex returns a commit index that is at least the index of every write
// acknowledged before the call. A read served by a state machine that has
// applied this index is linearizable. Concurrent calls share one round trip
// to the leader.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	n.readMu.Lock()
	if n.readBatch == nil {
		n.readBatch = &readBatch{done: make(chan struct{})}
	}
	b := n.readBatch
	n.readMu.Unlock()
	select {
	case n.readNotify <- struct{}{}:
	default: // a wake-up is already pending
	}
	select {
	case <-b.done:
		return b.index, b.err
	case <-ctx.Done():
		if n.leader.Load() == raft.None {
			return 0, ErrNoLeader
		}
		return 0, contextError(ctx)
	case <-n.stopc:
		return 0, ErrStopped
	}
}

// readLoop serves one batch of reads at a time. Reads that arrive during a
// round wait for the next one: the index of a round that started before them
// could miss writes acknowledged in between.
func (n *Node) readLoop() {
	var seq uint64
	for {
		select {
		case <-n.readNotify:
		case <-n.stopc:
			return
		}
		n.readMu.Lock()
		b := n.readBatch
		n.readBatch = nil
		n.readMu.Unlock()
		if b == nil {
			continue
		}
		b.index, b.err = n.requestReadIndex(&seq)
		close(b.done)
	}
}

// requestReadIndex asks raft for a read index and waits for the answer,
// resending with a new request id if none comes. Any answer to a request of
// this round is valid: every reader in the batch had arrived before the first
// request was sent.
func (n *Node) requestReadIndex(seq *uint64) (uint64, error) {
	first := *seq + 1
	deadline := time.NewTimer(n.cfg.RequestTimeout)
	defer deadline.Stop()
	retry := time.NewTicker(readIndexRetry)
	defer retry.Stop()
	for {
		if n.leader.Load() == raft.None {
			// A node that lost its quorum answers reads at once with
			// no_leader, as it does writes, instead of after the whole
			// request timeout; during an election they wait.
			if n.quorumLost() {
				return 0, ErrNoLeader
			}
			// Raft drops reads without a leader; waiting out an election is
			// the retry timer's job, but don't wait for nothing.
			select {
			case <-retry.C:
				continue
			case <-deadline.C:
				return 0, ErrNoLeader
			case <-n.stopc:
				return 0, ErrStopped
			}
		}
		*seq++
		rctx := binary.BigEndian.AppendUint64(nil, *seq)
		// ReadIndex only hands the request to raft's goroutine; it fails
		// when raft has stopped, and times out if raft is too busy to take
		// it, in which case the retry below sends it again.
		ctx, cancel := context.WithTimeout(context.Background(), readIndexRetry)
		err := n.node.ReadIndex(ctx, rctx)
		timedOut := ctx.Err() != nil
		cancel()
		if err != nil && !timedOut {
			return 0, ErrStopped
		}
	wait:
		for {
			select {
			case rs := <-n.readStates:
				if len(rs.RequestCtx) != 8 {
					continue
				}
				if id := binary.BigEndian.Uint64(rs.RequestCtx); id >= first && id <= *seq {
					return rs.Index, nil
				}
			case <-retry.C:
				break wait
			case <-deadline.C:
				if n.leader.Load() == raft.None {
					return 0, ErrNoLeader
				}
				return 0, ErrTimeout
			case <-n.stopc:
				return 0, ErrStopped
			}
		}
	}
}
