package kvstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/pkg/v3/idutil"
	"go.etcd.io/etcd/pkg/v3/wait"
	"go.uber.org/zap"

	"github.com/raftkv/raftkv/raftnode"
)

// Raft is what KV needs of the raft node beside its channels;
// raftnode.Node implements it.
type Raft interface {
	// ReadIndex confirms linearizable reads.
	ReadIndex(ctx context.Context) (uint64, error)
	// LeaderChanged returns the leader (0: none known) and term, and a
	// channel closed when the leader changes.
	LeaderChanged() (leader, term uint64, changed <-chan struct{})
	// ElectionTimeout is how long followers wait for a leader before
	// electing another: what a new leader adds to every lease.
	ElectionTimeout() time.Duration
}

// KV turns client requests into raft proposals and waits for their results,
// and applies committed state to the Store. Writes return only after they are
// committed and applied on this node; reads are linearizable unless asked
// otherwise.
type KV struct {
	store    *Store
	memberID uint64
	proposeC chan<- raftnode.Proposal
	raft     Raft
	lg       *zap.Logger
	ids      *idutil.Generator
	waits    wait.Wait
	hub      *hub
	metrics  *metrics
	lessor   *lessor
	// requestTimeout bounds the lease loop's own proposals and reads.
	requestTimeout time.Duration
	leaseDone      chan struct{} // closed when the lease loop has returned

	appliedMu sync.Mutex
	applied   uint64
	appliedC  chan struct{} // closed and replaced whenever applied grows

	done chan struct{} // closed when the commit stream ends
	err  error         // why applying stopped early; read after done
}

// Default watch limits.
const (
	DefaultWatchHistory = 10000 // events kept for watchers that resume
	DefaultWatchBuffer  = 256   // changes a watcher may have pending
	// DefaultWatchHistoryBytes bounds the keys and values the history
	// holds: 10000 events of 1.5 MiB would be 15 GiB.
	DefaultWatchHistoryBytes = 64 << 20
)

// Config configures a KV.
type Config struct {
	Logger *zap.Logger
	Store  *Store
	// MemberID is this member's raft id; it tells this member's commands
	// from the others'.
	MemberID uint64
	ProposeC chan<- raftnode.Proposal
	CommitC  <-chan raftnode.Commit
	Raft     Raft
	// WatchHistory bounds the events kept for resuming watchers, and
	// WatchHistoryBytes their size (keys, values and some overhead each);
	// WatchBuffer the changes one watcher may have pending.
	WatchHistory      int
	WatchHistoryBytes int64
	WatchBuffer       int
	// Metrics, when set, receives the service's raftkv_* metrics; it must
	// not be shared with another running KV. nil keeps them unregistered.
	Metrics prometheus.Registerer
	// RequestTimeout bounds what the leader proposes on its own, the
	// revokes of expired leases (default DefaultRequestTimeout).
	RequestTimeout time.Duration
}

// DefaultRequestTimeout is Config.RequestTimeout's default.
const DefaultRequestTimeout = 5 * time.Second

// New starts applying commits from cfg.CommitC to cfg.Store.
func New(cfg Config) *KV {
	if cfg.WatchHistory <= 0 {
		cfg.WatchHistory = DefaultWatchHistory
	}
	if cfg.WatchHistoryBytes <= 0 {
		cfg.WatchHistoryBytes = DefaultWatchHistoryBytes
	}
	if cfg.WatchBuffer <= 0 {
		cfg.WatchBuffer = DefaultWatchBuffer
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	kv := &KV{
		store:    cfg.Store,
		memberID: cfg.MemberID,
		proposeC: cfg.ProposeC,
		raft:     cfg.Raft,
		lg:       cfg.Logger,
		ids:      idutil.NewGenerator(uint16(cfg.MemberID), time.Now()),
		waits:    wait.New(),
		hub:      newHub(cfg.WatchHistory, cfg.WatchHistoryBytes, cfg.WatchBuffer),
		appliedC: make(chan struct{}),
		done:     make(chan struct{}),

		lessor:         newLessor(),
		requestTimeout: cfg.RequestTimeout,
		leaseDone:      make(chan struct{}),
	}
	kv.metrics = newMetrics(kv)
	kv.hub.lagged = kv.metrics.watchersLagged
	kv.metrics.register(kv.lg, cfg.Metrics)
	go kv.applyCommits(cfg.CommitC)
	go kv.leaseLoop()
	return kv
}

// Done is closed once the commit stream has ended, nothing more will be
// applied, and the lease loop has stopped.
func (kv *KV) Done() <-chan struct{} { return kv.leaseDone }

// Err returns, after Done, why applying stopped before the commit stream
// ended, or nil.
func (kv *KV) Err() error {
	<-kv.leaseDone
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
	defer kv.hub.stop()
	type waiter struct {
		id  uint64
		res Result
	}
	var changes []Change
	var mine []waiter
	for c := range commitC {
		start := time.Now()
		if c.Snapshot != nil {
			if err := kv.store.Restore(c.Snapshot); err != nil {
				// Applying anything on top of a state that failed to load
				// would diverge from the other replicas: stop.
				kv.err = fmt.Errorf("restore snapshot at %d: %w", c.Index, err)
				return
			}
			kv.hub.reset(kv.store.Revision())
			kv.lessor.restored(kv.store.Leases(), time.Now())
		}
		changes, mine = changes[:0], mine[:0]
		for _, e := range c.Entries {
			cmd, err := UnmarshalCommand(e.Data)
			if errors.Is(err, ErrNewerCommand) {
				// A member of a newer version wrote it; those members apply
				// it, so skipping it would diverge from them: stop.
				kv.err = fmt.Errorf("log entry %d: %w; upgrade this member to the cluster's newest version", e.Index, err)
				return
			}
			if err != nil {
				// Deterministic on every replica, so skipping keeps them equal.
				kv.lg.Error("skip undecodable entry", zap.Uint64("index", e.Index), zap.Error(err))
				continue
			}
			res := kv.store.Apply(e.Index, &cmd)
			if res.Lease != nil {
				if cmd.Op == OpLeaseGrant {
					kv.lessor.granted(res.Lease.Lease, time.Now())
				} else {
					kv.lessor.revoked(res.Lease.ID)
				}
			}
			if len(res.Change.Events) > 0 {
				changes = append(changes, res.Change)
			}
			if cmd.Origin == kv.memberID {
				mine = append(mine, waiter{cmd.ID, res})
			}
		}
		// Watchers hear of a change before its writer is answered, so a
		// watch opened after a write's response never sees that write.
		kv.hub.publish(changes)
		for _, w := range mine {
			kv.waits.Trigger(w.id, w.res)
		}
		kv.setApplied(c.Index)
		// Observed before Done: whoever waits on Done sees the commit
		// counted.
		kv.metrics.applyDuration.Observe(time.Since(start).Seconds())
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

// Put stores value under key if cond holds, attached to lease (0: none),
// and returns the result: the new revision and item. A failed condition is
// a *PreconditionError; a lease that does not exist is ErrLeaseNotFound.
func (kv *KV) Put(ctx context.Context, key, value []byte, cond Condition, lease uint64) (Result, error) {
	return kv.propose(ctx, Command{Op: OpPut, Cond: cond, Key: key, Value: value, Lease: lease})
}

// Delete removes key if cond holds. A missing key is ErrKeyNotFound.
func (kv *KV) Delete(ctx context.Context, key []byte, cond Condition) (Result, error) {
	return kv.propose(ctx, Command{Op: OpDelete, Cond: cond, Key: key})
}

// DeleteRange removes every key with the prefix in one change.
func (kv *KV) DeleteRange(ctx context.Context, prefix []byte) (Result, error) {
	return kv.propose(ctx, Command{Op: OpDeleteRange, Key: prefix})
}

// Txn proposes a transaction and returns its outcome and the store revision
// after it. A transaction that fails Validate is refused before it is
// proposed. Every transaction goes through the log, so its compares and
// reads are linearizable.
func (kv *KV) Txn(ctx context.Context, t *Txn) (TxnResult, uint64, error) {
	if err := t.Validate(); err != nil {
		return TxnResult{}, 0, err
	}
	res, err := kv.propose(ctx, Command{Op: OpTxn, Txn: t})
	if err != nil {
		return TxnResult{}, 0, err
	}
	return *res.Txn, res.Revision, nil
}

// Get returns the item under key and the store revision it was read at. A
// linearizable read first confirms with the leader which index it must
// reflect; a serializable one reads the local state as it is.
func (kv *KV) Get(ctx context.Context, key []byte, serializable bool) (Item, uint64, error) {
	if !serializable {
		if err := kv.linearize(ctx); err != nil {
			return Item{}, 0, err
		}
	}
	it, rev, ok := kv.store.Get(key)
	if !ok {
		return Item{}, rev, ErrKeyNotFound
	}
	return it, rev, nil
}

// ListResult is one page of a listing.
type ListResult struct {
	KVs      []KeyValue
	More     bool
	Revision uint64
}

// ListRequest asks for one page of a listing.
type ListRequest struct {
	// Prefix selects the keys; After, when set, starts the page after
	// that key; Limit bounds the page.
	Prefix, After []byte
	Limit         int
	// Only, when not nil, narrows the listing to the keys under these
	// prefixes, each under Prefix and none a prefix of another; empty
	// (not nil), it lists nothing.
	Only [][]byte
	// Serializable reads the local state without asking the leader.
	Serializable bool
}

// List returns a page of keys in key order.
func (kv *KV) List(ctx context.Context, req ListRequest) (ListResult, error) {
	if !req.Serializable {
		if err := kv.linearize(ctx); err != nil {
			return ListResult{}, err
		}
	}
	under := [][]byte{req.Prefix}
	if req.Only != nil {
		under = req.Only
	}
	kvs, more, rev := kv.store.ListUnder(under, req.After, req.Limit)
	return ListResult{KVs: kvs, More: more, Revision: rev}, nil
}

// Freeze returns the store's contents at one revision, for a backup: after
// confirming with the leader, unless serializable, that it reflects every
// write acknowledged before the call. The view costs nothing to hold but
// the tree nodes later writes copy.
func (kv *KV) Freeze(ctx context.Context, serializable bool) (Frozen, error) {
	if !serializable {
		if err := kv.linearize(ctx); err != nil {
			return Frozen{}, err
		}
	}
	return kv.store.Freeze(), nil
}

// Watch returns a watcher of key (of every key with that prefix when prefix
// is set) that delivers the changes from revision from on; 0 means from the
// next change. A revision older than the kept history is a *CompactedError.
// The caller must Close the watcher.
func (kv *KV) Watch(key []byte, prefix bool, from uint64) (*Watcher, error) {
	return kv.hub.watch(key, prefix, from)
}

// Watchers returns the number of open watchers.
func (kv *KV) Watchers() int { return kv.hub.count() }

func (kv *KV) linearize(ctx context.Context) error {
	index, err := kv.raft.ReadIndex(ctx)
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
	// From here raft may have the command: a stop or a timeout leaves its
	// outcome unknown, unless it was applied just before.
	select {
	case err := <-accepted:
		if err != nil {
			return Result{}, err
		}
	case <-ctx.Done():
		return outcome(applied, ErrTimeout)
	case <-kv.done:
		return outcome(applied, ErrTimeout)
	}
	return kv.awaitResult(ctx, applied)
}

// awaitResult waits for the result of a command raft has accepted. It
// gives up early when a new leader takes over without the command (see
// ErrLeaderChanged).
func (kv *KV) awaitResult(ctx context.Context, applied <-chan any) (Result, error) {
	_, term, changed := kv.raft.LeaderChanged()
	for {
		select {
		case res := <-applied:
			return result(res)
		case <-ctx.Done():
			return outcome(applied, ErrTimeout)
		case <-kv.done:
			return outcome(applied, ErrTimeout)
		case <-changed:
			var leader, now uint64
			leader, now, changed = kv.raft.LeaderChanged()
			if leader == 0 || now == term {
				continue
			}
			// A leader of a later term has taken over. Once this node has
			// applied what that leader committed first, the command is
			// applied if the new leader's log held it. If it is not, it was
			// lost with the old leader's term, or its proposal is still in
			// flight and could yet be committed: the outcome is unknown
			// either way, and waiting longer would tell nothing more.
			if err := kv.linearize(ctx); err != nil {
				return outcome(applied, ErrTimeout)
			}
			return outcome(applied, ErrLeaderChanged)
		}
	}
}

// outcome is the command's result if it has been applied, and unknown (err)
// otherwise.
func outcome(applied <-chan any, unknown error) (Result, error) {
	select {
	case res := <-applied:
		return result(res)
	default:
		return Result{}, unknown
	}
}

// result turns what the applier handed a waiter into the command's result;
// anything but a Result means none came.
func result(res any) (Result, error) {
	if r, ok := res.(Result); ok {
		return r, r.Err
	}
	return Result{}, ErrTimeout
}
