package kvstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// The leases' time. Which leases exist is replicated state (lease.go); when
// each one expires is not: only the leader keeps that time, in memory, the
// way etcd's lessor does. A keepalive reaches the leader, which confirms it
// still leads (a ReadIndex round) and pushes the lease's expiry a TTL
// ahead. When a lease's time runs out the leader proposes its revoke, so
// every replica deletes the same keys at the same revision.
//
// A leader that takes over does not know when the old one last renewed each
// lease, so it gives every lease its whole TTL again, plus one election
// timeout: a keepalive the old leader acknowledged can only have come before
// this leader was elected, so no lease expires before the time its holder
// was promised. A lease can outlive that time, by up to a TTL and an
// election timeout per leader change; it never expires early.

// leaseTick is how often the leader looks for expired leases. A lease is
// revoked at most about this long after it expired, plus the time its
// revoke takes to commit.
const leaseTick = 100 * time.Millisecond

// maxRevokesPerTick bounds the revokes proposed at once, as etcd bounds
// them, so that a mass expiry does not crowd client writes out of raft.
const maxRevokesPerTick = 500

// lessor keeps the leases' expiry times while this member is the leader.
type lessor struct {
	mu sync.Mutex
	// term is the leader term the expiries were set for; 0 when this member
	// is not the leader (or not yet ready to act as one).
	term   uint64
	expiry map[uint64]time.Time
	// retry is when a revoke proposed for an expired lease may be proposed
	// again, if it has not applied by then.
	retry map[uint64]time.Time
}

func newLessor() *lessor {
	return &lessor{expiry: make(map[uint64]time.Time), retry: make(map[uint64]time.Time)}
}

// primaryAt reports whether the lessor keeps time for term.
func (l *lessor) primaryAt(term uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.term != 0 && l.term == term
}

// promote starts keeping time for term: every lease gets its TTL plus
// extend from now.
func (l *lessor) promote(term uint64, leases []Lease, now time.Time, extend time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if term <= l.term {
		return
	}
	l.term = term
	clear(l.expiry)
	clear(l.retry)
	for _, ls := range leases {
		l.expiry[ls.ID] = now.Add(time.Duration(ls.TTL)*time.Millisecond + extend)
	}
}

// demote stops keeping time: this member no longer leads.
func (l *lessor) demote() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.term = 0
	clear(l.expiry)
	clear(l.retry)
}

// granted starts a new lease's time, when keeping time.
func (l *lessor) granted(ls Lease, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.term != 0 {
		l.expiry[ls.ID] = now.Add(time.Duration(ls.TTL) * time.Millisecond)
	}
}

// revoked forgets a lease.
func (l *lessor) revoked(id uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.expiry, id)
	delete(l.retry, id)
}

// restored follows a snapshot that replaced the store: leases it removed
// are forgotten, new ones get their TTL (a leader never installs a
// snapshot; this keeps the lessor consistent if one ever did).
func (l *lessor) restored(leases []Lease, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.term == 0 {
		return
	}
	keep := make(map[uint64]time.Time, len(leases))
	for _, ls := range leases {
		if t, ok := l.expiry[ls.ID]; ok {
			keep[ls.ID] = t
		} else {
			keep[ls.ID] = now.Add(time.Duration(ls.TTL) * time.Millisecond)
		}
	}
	l.expiry = keep
	clear(l.retry)
}

// renew pushes the lease's expiry a TTL from now, if the lessor keeps time
// for term and the lease has not expired.
func (l *lessor) renew(term uint64, ls Lease, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.term == 0 || l.term != term {
		return ErrNotLeader
	}
	exp, ok := l.expiry[ls.ID]
	if !ok || !now.Before(exp) {
		// Expired: its revoke is on its way.
		return ErrLeaseNotFound
	}
	l.expiry[ls.ID] = now.Add(time.Duration(ls.TTL) * time.Millisecond)
	return nil
}

// remaining is the time left to a lease, when keeping time for term.
func (l *lessor) remaining(term, id uint64, now time.Time) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.term == 0 || l.term != term {
		return 0, ErrNotLeader
	}
	exp, ok := l.expiry[id]
	if !ok {
		return 0, ErrLeaseNotFound
	}
	return max(exp.Sub(now), 0), nil
}

// expired returns up to limit leases whose time has run out and whose
// revoke is not already under way, and marks them under way until retryAt.
func (l *lessor) expired(now, retryAt time.Time, limit int) []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []uint64
	for id, exp := range l.expiry {
		if len(ids) == limit {
			break
		}
		if now.Before(exp) || now.Before(l.retry[id]) {
			continue
		}
		ids = append(ids, id)
		l.retry[id] = retryAt
	}
	return ids
}

// leaseLoop keeps the leases' time while this member leads: it promotes the
// lessor when the member becomes leader, demotes it when it stops, and
// revokes expired leases. It returns when the commit stream ends.
func (kv *KV) leaseLoop() {
	defer close(kv.leaseDone)
	if kv.raft == nil { // a KV that only applies, as in tests
		<-kv.done
		return
	}
	var revokes sync.WaitGroup
	defer revokes.Wait()
	tick := time.NewTicker(leaseTick)
	defer tick.Stop()
	for {
		leader, term, changed := kv.raft.LeaderChanged()
		if leader != kv.memberID {
			kv.lessor.demote()
		} else if !kv.lessor.primaryAt(term) {
			// Failing here (no quorum yet) is retried at the next tick.
			_ = kv.promote(term)
		}
		select {
		case <-changed:
			continue
		case <-tick.C:
		case <-kv.done:
			return
		}
		if !kv.lessor.primaryAt(term) {
			continue
		}
		now := time.Now()
		for _, id := range kv.lessor.expired(now, now.Add(2*kv.requestTimeout), maxRevokesPerTick) {
			revokes.Add(1)
			go func() {
				defer revokes.Done()
				ctx, cancel := context.WithTimeout(context.Background(), kv.requestTimeout)
				defer cancel()
				res, err := kv.propose(ctx, Command{Op: OpLeaseRevoke, Lease: id})
				if err == nil {
					kv.metrics.leasesExpired.Inc()
					kv.lg.Info("lease expired", zap.Uint64("lease", id), zap.Int("keys-deleted", res.Deleted), zap.Uint64("revision", res.Revision))
				} else if !errors.Is(err, ErrLeaseNotFound) { // revoked meanwhile
					kv.lg.Warn("revoking an expired lease failed; retrying", zap.Uint64("lease", id), zap.Error(err))
				}
			}()
		}
	}
}

// promote makes the lessor keep time for term, once this member, as its
// leader, has applied everything committed before (a ReadIndex round
// confirms both), so that it knows every lease.
func (kv *KV) promote(term uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), kv.requestTimeout)
	defer cancel()
	if err := kv.linearize(ctx); err != nil {
		return err
	}
	if leader, now, _ := kv.raft.LeaderChanged(); leader != kv.memberID || now != term {
		return ErrNotLeader
	}
	kv.lessor.promote(term, kv.store.Leases(), time.Now(), kv.raft.ElectionTimeout())
	return nil
}

// leaderTerm returns the term in which this member leads and keeps the
// leases' time, promoting the lessor if it is not yet; ErrNotLeader when it
// does not lead.
func (kv *KV) leaderTerm() (uint64, error) {
	leader, term, _ := kv.raft.LeaderChanged()
	if leader != kv.memberID {
		return 0, ErrNotLeader
	}
	if !kv.lessor.primaryAt(term) {
		if err := kv.promote(term); err != nil {
			return 0, err
		}
	}
	return term, nil
}

// MinLeaseTTL is the shortest TTL a grant gives, one and a half election
// timeouts as in etcd: a shorter lease could expire during an election
// that its holder's keepalives cannot reach through.
func (kv *KV) MinLeaseTTL() time.Duration {
	return (kv.raft.ElectionTimeout()*3/2 + time.Millisecond - 1).Truncate(time.Millisecond)
}

// Grant creates a lease of ttl, raised to MinLeaseTTL, with id (0: the
// store chooses one), and returns it.
func (kv *KV) Grant(ctx context.Context, id uint64, ttl time.Duration) (Lease, error) {
	ttl = max(ttl, kv.MinLeaseTTL())
	l := Lease{ID: max(id, 1), TTL: ttl.Milliseconds()}
	if err := validLease(l); err != nil {
		return Lease{}, fmt.Errorf("%w: %s", ErrInvalidLease, err)
	}
	res, err := kv.propose(ctx, Command{Op: OpLeaseGrant, Lease: id, TTL: l.TTL})
	if err != nil {
		return Lease{}, err
	}
	return res.Lease.Lease, nil
}

// Revoke removes a lease and deletes its keys in one change; it returns the
// keys deleted and the store revision after it.
func (kv *KV) Revoke(ctx context.Context, id uint64) (LeaseResult, uint64, error) {
	res, err := kv.propose(ctx, Command{Op: OpLeaseRevoke, Lease: id})
	if err != nil {
		return LeaseResult{}, 0, err
	}
	return *res.Lease, res.Revision, nil
}

// KeepAlive renews a lease for its TTL. Only the leader keeps the leases'
// time: elsewhere it is ErrNotLeader. The leader first confirms that it
// still leads, so that a deposed leader renews nothing.
func (kv *KV) KeepAlive(ctx context.Context, id uint64) (Lease, error) {
	if err := kv.linearize(ctx); err != nil {
		return Lease{}, err
	}
	term, err := kv.leaderTerm()
	if err != nil {
		return Lease{}, err
	}
	info, _, ok := kv.store.Lease(id)
	if !ok {
		return Lease{}, leaseNotFound(id)
	}
	if err := kv.lessor.renew(term, info.Lease, time.Now()); err != nil {
		return Lease{}, leaseErr(err, id)
	}
	return info.Lease, nil
}

// LeaseStatus is a lease as its leader sees it.
type LeaseStatus struct {
	LeaseInfo
	// Remaining is the time left before the leader revokes it.
	Remaining time.Duration
}

// TimeToLive returns the lease with its keys and the time it has left.
// Like KeepAlive, it is served by the leader only.
func (kv *KV) TimeToLive(ctx context.Context, id uint64) (LeaseStatus, error) {
	if err := kv.linearize(ctx); err != nil {
		return LeaseStatus{}, err
	}
	term, err := kv.leaderTerm()
	if err != nil {
		return LeaseStatus{}, err
	}
	info, _, ok := kv.store.Lease(id)
	if !ok {
		return LeaseStatus{}, leaseNotFound(id)
	}
	left, err := kv.lessor.remaining(term, id, time.Now())
	if err != nil {
		return LeaseStatus{}, leaseErr(err, id)
	}
	return LeaseStatus{LeaseInfo: info, Remaining: left}, nil
}

// Leases returns every lease, in id order, as of a linearizable read.
func (kv *KV) Leases(ctx context.Context) ([]Lease, error) {
	if err := kv.linearize(ctx); err != nil {
		return nil, err
	}
	return kv.store.Leases(), nil
}
