package kvstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/pkg/v3/idutil"
	"go.etcd.io/etcd/pkg/v3/wait"
	"go.uber.org/zap"

	"github.com/raftkv/raftkv/raftnode"
)

// ReadIndexer confirms linearizable reads; raftnode.Node implements it.
type ReadIndexer interface {
	ReadIndex(ctx context.Context) (uint64, error)
}

// KV turns client requests into raft proposals and waits for their results,
// and applies committed state to the Store. Writes return only after they are
// committed and applied on this node; reads are linearizable unless asked
// otherwise.
type KV struct {
	store    *Store
	memberID uint64
	proposeC chan<- raftnode.Proposal
	reads    ReadIndexer
	lg       *zap.Logger
	ids      *idutil.Generator
	waits    wait.Wait

	appliedMu sync.Mutex
	applied   uint64
	appliedC  chan struct{} // closed and replaced whenever applied grows

	done chan struct{} // closed when the commit stream ends
	err  error         // why applying stopped early; read after done
}

// New starts applying commits from commitC to store. memberID makes request
// ids unique across the cluster.
func New(lg *zap.Logger, store *Store, memberID uint64, proposeC chan<- raftnode.Proposal, commitC <-chan raftnode.Commit, reads ReadIndexer) *KV {
	kv := &KV{
		store:    store,
		memberID: memberID,
		proposeC: proposeC,
		reads:    reads,
		lg:       lg,
		ids:      idutil.NewGenerator(uint16(memberID), time.Now()),
		waits:    wait.New(),
		appliedC: make(chan struct{}),
		done:     make(chan struct{}),
	}
	go kv.applyCommits(commitC)
	return kv
}

// Done is closed once the commit stream has ended and nothing more will be
// applied.
func (kv *KV) Done() <-chan struct{} { return kv.done }

// Err returns, after Done, why applying stopped before the commit stream
// ended, or nil.
func (kv *KV) Err() error {
	<-kv.done
	return kv.err
}

// Store returns the underlying state machine.
func (kv *KV) Store() *Store { return kv.store }

// Applied returns the log index the store has reached.
func (kv *KV) Applied() uint64 {
	kv.appliedMu.Lock()
	defer kv.appliedMu.Unlock()
	return kv.applied
}

func (kv *KV) applyCommits(commitC <-chan raftnode.Commit) {
	defer close(kv.done)
	for c := range commitC {
		if c.Snapshot != nil {
			if err := kv.store.Restore(c.Snapshot); err != nil {
				// Applying anything on top of a state that failed to load
				// would diverge from the other replicas: stop.
				kv.err = fmt.Errorf("kvstore: restore snapshot at %d: %w", c.Index, err)
				return
			}
		}
		for _, e := range c.Entries {
			cmd, err := UnmarshalCommand(e.Data)
			if err != nil {
				// Deterministic on every replica, so skipping keeps them equal.
				kv.lg.Error("skip undecodable entry", zap.Uint64("index", e.Index), zap.Error(err))
				continue
			}
			res := kv.store.Apply(e.Index, &cmd)
			if cmd.Origin == kv.memberID {
				kv.waits.Trigger(cmd.ID, res)
			}
		}
		kv.setApplied(c.Index)
		close(c.Done)
	}
}

func (kv *KV) setApplied(index uint64) {
	kv.appliedMu.Lock()
	defer kv.appliedMu.Unlock()
	if index <= kv.applied {
		return
	}
	kv.applied = index
	close(kv.appliedC)
	kv.appliedC = make(chan struct{})
}

// waitApplied blocks until the store has applied index.
func (kv *KV) waitApplied(ctx context.Context, index uint64) error {
	for {
		kv.appliedMu.Lock()
		applied, ch := kv.applied, kv.appliedC
		kv.appliedMu.Unlock()
		if applied >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ErrReadTimeout
		case <-kv.done:
			return ErrStopped
		}
	}
}

// Put stores value under key and returns the new revision.
func (kv *KV) Put(ctx context.Context, key, value []byte) (uint64, error) {
	res, err := kv.propose(ctx, Command{Op: OpPut, Key: key, Value: value})
	if err != nil {
		return 0, err
	}
	return res.Revision, res.Err
}

// Delete removes key and returns the new revision.
func (kv *KV) Delete(ctx context.Context, key []byte) (uint64, error) {
	res, err := kv.propose(ctx, Command{Op: OpDelete, Key: key})
	if err != nil {
		return 0, err
	}
	return res.Revision, res.Err
}

// Get returns the item under key. A linearizable read first confirms with
// the leader which index it must reflect; a serializable one reads the local
// state as it is.
func (kv *KV) Get(ctx context.Context, key []byte, serializable bool) (Item, error) {
	if !serializable {
		if err := kv.linearize(ctx); err != nil {
			return Item{}, err
		}
	}
	it, ok := kv.store.Get(key)
	if !ok {
		return Item{}, ErrKeyNotFound
	}
	return it, nil
}

func (kv *KV) linearize(ctx context.Context) error {
	index, err := kv.reads.ReadIndex(ctx)
	if err != nil {
		if errors.Is(err, raftnode.ErrTimeout) {
			return ErrReadTimeout
		}
		return err
	}
	return kv.waitApplied(ctx, index)
}

// propose sends cmd through raft and waits until it is applied here.
func (kv *KV) propose(ctx context.Context, cmd Command) (Result, error) {
	cmd.Origin, cmd.ID = kv.memberID, kv.ids.Next()
	applied := kv.waits.Register(cmd.ID)
	// Unregisters the waiter on every early return; a no-op once triggered.
	defer kv.waits.Trigger(cmd.ID, nil)
	accepted := make(chan error, 1)
	select {
	case kv.proposeC <- raftnode.Proposal{Data: cmd.Marshal(), Result: accepted}:
	case <-ctx.Done():
		return Result{}, ErrBusy
	case <-kv.done:
		return Result{}, ErrStopped
	}
	select {
	case err := <-accepted:
		if err != nil {
			return Result{}, err
		}
	case <-ctx.Done():
		return Result{}, ErrTimeout // queued, so it may still be applied
	case <-kv.done:
		return Result{}, ErrStopped
	}
	select {
	case res := <-applied:
		if r, ok := res.(Result); ok {
			return r, nil
		}
		return Result{}, ErrStopped
	case <-ctx.Done():
		return Result{}, ErrTimeout
	case <-kv.done:
		return Result{}, ErrStopped
	}
}
