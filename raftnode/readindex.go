package raftnode

import (
	"context"
	"encoding/binary"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
)

// readIndexRetry is how long a ReadIndex request waits for its answer before
// it is sent again; raft drops it silently while leadership is changing.
const readIndexRetry = 500 * time.Millisecond

// readIndexer serves linearizable reads: it finds, through raft's ReadIndex,
// a commit index that covers every write acknowledged before the read, and
// shares each round trip to the leader among all the reads that arrived
// while the previous one was in flight. It owns one goroutine, run, which
// stops when stop is closed. The Ready loop hands it raft's answers through
// deliver, and never waits on it.
type readIndexer struct {
	raft    readIndexRaft
	leader  leaderView
	timeout time.Duration // how long a round may take before ErrTimeout
	stop    <-chan struct{}

	mu     sync.Mutex
	batch  *readBatch    // the reads waiting for the next round
	notify chan struct{} // a read is waiting (capacity 1)
	states chan raft.ReadState
}

// readIndexRaft is how the batcher asks its member's raft for a read index.
type readIndexRaft interface {
	// requestReadIndex hands raft a ReadIndex request (raft.Node.ReadIndex).
	requestReadIndex(ctx context.Context, rctx []byte) error
}

// leaderView is what the batcher needs to know of the leader (leadership).
type leaderView interface {
	// current is the current leader, raft.None while there is none.
	current() uint64
	// quorumLost reports whether the member has gone without a leader for
	// longer than an election can take.
	quorumLost() bool
}

func newReadIndexer(r readIndexRaft, leader leaderView, timeout time.Duration, stop <-chan struct{}) *readIndexer {
	return &readIndexer{raft: r, leader: leader, timeout: timeout, stop: stop,
		notify: make(chan struct{}, 1), states: make(chan raft.ReadState, 16)}
}

// deliver hands the batcher an answer from raft. It never blocks: a request
// whose answer is dropped is sent again after readIndexRetry.
func (ri *readIndexer) deliver(rs raft.ReadState) {
	select {
	case ri.states <- rs:
	default:
	}
}

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
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) { return n.reads.readIndex(ctx) }

func (ri *readIndexer) readIndex(ctx context.Context) (uint64, error) {
	ri.mu.Lock()
	if ri.batch == nil {
		ri.batch = &readBatch{done: make(chan struct{})}
	}
	b := ri.batch
	ri.mu.Unlock()
	select {
	case ri.notify <- struct{}{}:
	default: // a wake-up is already pending
	}
	select {
	case <-b.done:
		return b.index, b.err
	case <-ctx.Done():
		if ri.leader.current() == raft.None {
			return 0, ErrNoLeader
		}
		return 0, contextError(ctx)
	case <-ri.stop:
		return 0, ErrStopped
	}
}

// run serves one batch of reads at a time. Reads that arrive during a round
// wait for the next one: the index of a round that started before them could
// miss writes acknowledged in between.
func (ri *readIndexer) run() {
	var seq uint64
	for {
		select {
		case <-ri.notify:
		case <-ri.stop:
			return
		}
		ri.mu.Lock()
		b := ri.batch
		ri.batch = nil
		ri.mu.Unlock()
		if b == nil {
			continue
		}
		b.index, b.err = ri.round(&seq)
		close(b.done)
	}
}

// round asks raft for a read index and waits for the answer, resending with
// a new request id if none comes. Any answer to a request of this round is
// valid: every reader in the batch had arrived before the first request was
// sent.
func (ri *readIndexer) round(seq *uint64) (uint64, error) {
	first := *seq + 1
	deadline := time.NewTimer(ri.timeout)
	defer deadline.Stop()
	retry := time.NewTicker(readIndexRetry)
	defer retry.Stop()
	for {
		if ri.leader.current() == raft.None {
			// A node that lost its quorum answers reads at once with
			// no_leader, as it does writes, instead of after the whole
			// request timeout; during an election they wait.
			if ri.leader.quorumLost() {
				return 0, ErrNoLeader
			}
			// Raft drops reads without a leader; waiting out an election is
			// the retry timer's job, but don't wait for nothing.
			select {
			case <-retry.C:
				continue
			case <-deadline.C:
				return 0, ErrNoLeader
			case <-ri.stop:
				return 0, ErrStopped
			}
		}
		*seq++
		rctx := binary.BigEndian.AppendUint64(nil, *seq)
		// ReadIndex only hands the request to raft's goroutine; it fails
		// when raft has stopped, and times out if raft is too busy to take
		// it, in which case the retry below sends it again.
		ctx, cancel := context.WithTimeout(context.Background(), readIndexRetry)
		err := ri.raft.requestReadIndex(ctx, rctx)
		timedOut := ctx.Err() != nil
		cancel()
		if err != nil && !timedOut {
			return 0, ErrStopped
		}
	wait:
		for {
			select {
			case rs := <-ri.states:
				if len(rs.RequestCtx) != 8 {
					continue
				}
				if id := binary.BigEndian.Uint64(rs.RequestCtx); id >= first && id <= *seq {
					return rs.Index, nil
				}
			case <-retry.C:
				break wait
			case <-deadline.C:
				if ri.leader.current() == raft.None {
					return 0, ErrNoLeader
				}
				return 0, ErrTimeout
			case <-ri.stop:
				return 0, ErrStopped
			}
		}
	}
}

// requestReadIndex is the member's side of readIndexRaft.
func (n *Node) requestReadIndex(ctx context.Context, rctx []byte) error {
	return n.node.ReadIndex(ctx, rctx)
}
