package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"
)

// Locks and elections, built as etcd's concurrency package builds them, on
// leases, create revisions and watches:
//
//   - a contender holds a Session, a lease it keeps alive;
//   - it creates NAME/<lease id in hex> attached to that lease, with a
//     transaction that creates the key only if it does not exist, and takes
//     the key's create revision as its place in line;
//   - it waits until no key of NAME/ has a lower create revision, watching
//     only the key right before its own (no thundering herd: a release wakes
//     one waiter);
//   - it releases by deleting its key; if it dies, its lease expires and the
//     key goes with it.
//
// The create revision is also the holder's fencing token: it grows with
// every acquisition. A lock cannot stop a holder that was paused (a GC, a
// SIGSTOP, a slow disk) from acting after its lease expired and another
// holder took the lock; the resource it guards can, by refusing any request
// whose token is lower than the highest it has seen. See docs/LOCKS.md.

// DefaultSessionTTL is the lease TTL of a session when none is given.
const DefaultSessionTTL = 10 * time.Second

// ErrNoLeader means an election has no leader: nobody campaigns.
var ErrNoLeader = errors.New("the election has no leader")

// Session is a lease kept alive for locks and elections. When it is lost,
// every lock and leadership held with it is lost too: Done is closed.
type Session struct {
	c    *Client
	keep *KeepAlive
}

// NewSession grants a lease of ttl (DefaultSessionTTL when 0) and keeps it
// alive until Close.
func (c *Client) NewSession(ctx context.Context, ttl time.Duration) (*Session, error) {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	// The lease's TTL runs from when the leader applied the grant, which
	// is after the request was sent: count it from there.
	start := time.Now()
	l, err := c.Grant(ctx, ttl, 0)
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	return &Session{c: c, keep: c.keepAlive(l, start)}, nil
}

// Lease is the session's lease id.
func (s *Session) Lease() uint64 { return s.keep.Lease().ID }

// Done is closed when the session's lease is lost or the session closed.
func (s *Session) Done() <-chan struct{} { return s.keep.Done() }

// Err says why Done was closed: an error matching ErrLeaseLost, or nil
// after Close.
func (s *Session) Err() error { return s.keep.Err() }

// Close stops renewing the lease and revokes it, which deletes every key
// attached to it: the session's locks are released and its leaderships
// resigned. If the revoke fails the lease expires after its TTL.
func (s *Session) Close(ctx context.Context) error {
	s.keep.Close()
	if _, err := s.c.Revoke(ctx, s.Lease()); err != nil && !errors.Is(err, ErrLeaseNotFound) {
		return err
	}
	return nil
}

// contender is a session's key in a line: a lock's or an election's.
type contender struct {
	s      *Session
	prefix []byte
	key    []byte
	rev    uint64
}

func newContender(s *Session, name string) contender {
	prefix := []byte(name + "/")
	return contender{s: s, prefix: prefix, key: fmt.Appendf(append([]byte(nil), prefix...), "%016x", s.Lease())}
}

// join creates the contender's key with value, attached to the session's
// lease, unless it exists (the session joined before), and takes its
// create revision. Joining twice changes nothing, so an attempt whose
// outcome is unknown is simply made again.
func (ct *contender) join(ctx context.Context, value []byte) error {
	zero := uint64(0)
	req := TxnRequest{
		Compare: []TxnCompare{{Key: ct.key, Target: "create_revision", Op: "=", CreateRevision: &zero}},
		Success: []TxnOp{{Put: &TxnPut{Key: ct.key, Value: value, Lease: ct.s.Lease()}}},
		Failure: []TxnOp{{Get: &TxnKey{Key: ct.key}}},
	}
	for {
		res, err := ct.s.c.Txn(ctx, req)
		if errors.Is(err, ErrOutcomeUnknown) && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return err
		}
		switch r := res.Results[0]; {
		case r.Put != nil:
			ct.rev = r.Put.KV.CreateRevision
		case r.Get != nil && r.Get.KV != nil:
			ct.rev = r.Get.KV.CreateRevision
		default:
			return fmt.Errorf("join %q: unexpected answer %+v", ct.key, res)
		}
		return nil
	}
}

// waitTurn waits until no key of the line was created before the
// contender's. It watches only its predecessor, from the revision of the
// listing that named it, so a delete in between is not missed.
func (ct *contender) waitTurn(ctx context.Context) error {
	c := ct.s.c
	for {
		page, err := c.List(ctx, ct.prefix, ListOptions{Limit: 10000, KeysOnly: true})
		if err != nil {
			return err
		}
		var pred []byte
		var predRev uint64
		mine := false
		for _, kv := range page.KVs {
			switch {
			case string(kv.Key) == string(ct.key):
				mine = kv.CreateRevision == ct.rev
			case kv.CreateRevision < ct.rev && kv.CreateRevision > predRev:
				pred, predRev = kv.Key, kv.CreateRevision
			}
		}
		if !mine {
			return fmt.Errorf("%w: key %q is gone (its lease expired or was revoked)", ErrLeaseLost, ct.key)
		}
		if pred == nil {
			return nil
		}
		if err := waitDelete(ctx, c, pred, page.Revision+1, ct.s.Done()); err != nil {
			return err
		}
	}
}

// waitDelete waits until key is deleted at or after revision from.
func waitDelete(ctx context.Context, c *Client, key []byte, from uint64, lost <-chan struct{}) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := c.Watch(ctx, key, WatchOptions{From: from})
	if errors.As(err, new(*CompactedError)) {
		return nil // too old to watch: the caller lists again
	}
	if err != nil {
		return err
	}
	defer w.Close()
	stop := context.AfterFunc(ctx, func() { w.Close() })
	defer stop()
	go func() {
		select {
		case <-lost:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		ev, err := w.Next()
		if err != nil {
			select {
			case <-lost:
				return fmt.Errorf("%w: while waiting", ErrLeaseLost)
			default:
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if ev.Type == EventDelete {
			return nil
		}
	}
}

// leave deletes the contender's key, if it is still the one it created.
func (ct *contender) leave(ctx context.Context) error {
	if ct.rev == 0 {
		return nil
	}
	req := TxnRequest{
		Compare: []TxnCompare{{Key: ct.key, Target: "create_revision", Op: "=", CreateRevision: &ct.rev}},
		Success: []TxnOp{{Delete: &TxnKey{Key: ct.key}}},
	}
	if _, err := ct.s.c.Txn(ctx, req); err != nil {
		return err
	}
	ct.rev = 0
	return nil
}

// Mutex is a distributed lock held with a session.
type Mutex struct{ ct contender }

// NewMutex returns the lock NAME; its keys are under NAME/.
func NewMutex(s *Session, name string) *Mutex { return &Mutex{newContender(s, name)} }

// Lock waits until the session holds the lock. On an error (the context
// ended, the session's lease was lost) it leaves the line.
func (m *Mutex) Lock(ctx context.Context) error {
	if err := m.ct.join(ctx, nil); err != nil {
		return fmt.Errorf("lock %q: %w", m.ct.prefix, err)
	}
	if err := m.ct.waitTurn(ctx); err != nil {
		leaveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = m.ct.leave(leaveCtx)
		return fmt.Errorf("lock %q: %w", m.ct.prefix, err)
	}
	return nil
}

// Unlock releases the lock.
func (m *Mutex) Unlock(ctx context.Context) error {
	if err := m.ct.leave(ctx); err != nil {
		return fmt.Errorf("unlock %q: %w", m.ct.prefix, err)
	}
	return nil
}

// Key is the lock's key while held.
func (m *Mutex) Key() []byte { return m.ct.key }

// Revision is the fencing token of the holder: the create revision of its
// key, higher than any earlier holder's.
func (m *Mutex) Revision() uint64 { return m.ct.rev }

// Election is a leader election among sessions: the contender whose key was
// created first leads, and its key's value is the leader's proposal.
type Election struct {
	c  *Client
	ct contender
}

// NewElection returns the election NAME; its keys are under NAME/.
func NewElection(s *Session, name string) *Election {
	return &Election{c: s.c, ct: newContender(s, name)}
}

// Campaign waits until the session leads, with value as its proposal.
func (e *Election) Campaign(ctx context.Context, value []byte) error {
	if err := e.ct.join(ctx, value); err != nil {
		return fmt.Errorf("campaign %q: %w", e.ct.prefix, err)
	}
	if err := e.ct.waitTurn(ctx); err != nil {
		leaveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = e.ct.leave(leaveCtx)
		return fmt.Errorf("campaign %q: %w", e.ct.prefix, err)
	}
	return nil
}

// Resign gives up leadership (or the campaign).
func (e *Election) Resign(ctx context.Context) error {
	if err := e.ct.leave(ctx); err != nil {
		return fmt.Errorf("resign %q: %w", e.ct.prefix, err)
	}
	return nil
}

// Key is the session's key in the election.
func (e *Election) Key() []byte { return e.ct.key }

// Revision is the leader's term as a fencing token: its key's create
// revision.
func (e *Election) Revision() uint64 { return e.ct.rev }

// ElectionLeader returns the key of the election's leader, whose value is
// its proposal; ErrNoLeader when nobody campaigns.
func (c *Client) ElectionLeader(ctx context.Context, name string) (KV, error) {
	page, err := c.List(ctx, []byte(name+"/"), ListOptions{Limit: 10000})
	if err != nil {
		return KV{}, err
	}
	leader, ok := firstCreated(page.KVs)
	if !ok {
		return KV{}, fmt.Errorf("election %q: %w", name, ErrNoLeader)
	}
	leader.Revision = page.Revision
	return leader, nil
}

func firstCreated(kvs []KV) (KV, bool) {
	var first KV
	for _, kv := range kvs {
		if first.CreateRevision == 0 || kv.CreateRevision < first.CreateRevision {
			first = kv
		}
	}
	return first, first.CreateRevision != 0
}

// Observe yields the election's leader each time it changes (a new leader,
// or a new proposal of the same one), starting with the current one, and
// a KV with no key when nobody leads. It ends with the context, or at the
// first error, yielded.
func (c *Client) Observe(ctx context.Context, name string) iter.Seq2[KV, error] {
	return func(yield func(KV, error) bool) {
		prefix := []byte(name + "/")
		var last KV
		for first := true; ; first = false {
			page, err := c.List(ctx, prefix, ListOptions{Limit: 10000})
			if err != nil {
				yield(KV{}, err)
				return
			}
			leader, _ := firstCreated(page.KVs)
			leader.Revision = page.Revision
			if first || string(leader.Key) != string(last.Key) || leader.ModRevision != last.ModRevision {
				if !yield(leader, nil) {
					return
				}
				last = leader
			}
			// Any change of the line may change the leader.
			if err := waitChange(ctx, c, prefix, page.Revision+1); err != nil {
				if ctx.Err() == nil {
					yield(KV{}, err)
				}
				return
			}
		}
	}
}

// waitChange waits for any event under prefix from revision from on.
func waitChange(ctx context.Context, c *Client, prefix []byte, from uint64) error {
	w, err := c.Watch(ctx, prefix, WatchOptions{Prefix: true, From: from})
	if err != nil {
		return err
	}
	defer w.Close()
	stop := context.AfterFunc(ctx, func() { w.Close() })
	defer stop()
	_, err = w.Next()
	return err
}
