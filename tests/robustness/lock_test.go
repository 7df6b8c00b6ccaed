//go:build unix

package robustness

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/wire"
)

// Locker settings.
const (
	lockers = 3
	// lockTTL is the sessions' TTL: the server's minimum, one and a half
	// of its 1 s election timeout, so that a lease whose holder cannot
	// renew it ends within the history.
	lockTTL = 1500 * time.Millisecond
	// lockWaitTimeout bounds one Lock: the holder before may have to lose
	// its lease first, a TTL and an election timeout after a leader change.
	lockWaitTimeout = 10 * time.Second
	// releaseTimeout bounds the attempts to close a session.
	releaseTimeout = 5 * time.Second
	// maxIncrements bounds the increments of one hold.
	maxIncrements = 3
	// leasesGoneTimeout bounds releaseLeases, once the lockers stopped.
	leasesGoneTimeout = 20 * time.Second
	// lockerStream is the first stream of the history's seed the lockers
	// draw from (the workload's clients use 0 to workloadClients-1).
	lockerStream = 100
)

// lockSet runs the lockers of a history: each takes the lock in a loop
// with a new session, claims the fenced counter, increments it a few times
// and unlocks (see lockcheck_test.go). Lockers 0 and 1 use every member,
// starting at different ones; locker 2 pins each session to one member, the
// next session to the next one, so that its lease ends when that member is
// killed or stopped, and its requests can arrive late. (An isolated member
// still forwards keepalives to the leader over the client port.)
type lockSet struct {
	c      *cluster
	rec    *recorder
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	acqs      []lockAcquisition
	writes    []fencedWrite
	lockErrs  int      // Locks that failed
	unexpects []string // answers the API never gives; each fails the history
}

// locker is one locker's own state.
type locker struct {
	id       int
	rng      *rand.Rand
	hc       *http.Client
	seq      int // for write IDs
	sessions int
	// late is a hold whose holder will send one more increment once it
	// holds the lock again, or nil.
	late *hold
}

func startLockers(c *cluster, rec *recorder, seed uint64) *lockSet {
	ctx, cancel := context.WithCancel(context.Background())
	ls := &lockSet{c: c, rec: rec, ctx: ctx, cancel: cancel}
	for i := range lockers {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{Timeout: time.Second}).DialContext
		l := &locker{id: i, rng: rand.New(rand.NewPCG(seed, lockerStream+uint64(i))), hc: &http.Client{Transport: tr}}
		ls.wg.Add(1)
		go func() {
			defer ls.wg.Done()
			defer tr.CloseIdleConnections()
			ls.run(l)
		}()
	}
	return ls
}

// stop tells the lockers to stop; halt waits for them. Each unlocks and
// closes its session first.
func (ls *lockSet) stop() { ls.cancel() }

func (ls *lockSet) halt() {
	ls.cancel()
	ls.wg.Wait()
}

func (ls *lockSet) halting() bool { return ls.ctx.Err() != nil }

func (ls *lockSet) run(l *locker) {
	for !ls.halting() {
		if !ls.cycle(l) {
			select {
			case <-time.After(unavailableBackoff):
			case <-ls.ctx.Done():
			}
		}
	}
}

// endpoints are the client URLs of the members of the moment that l uses
// for its next session.
func (ls *lockSet) endpoints(l *locker) []string {
	ms := ls.c.members()
	if l.id == lockers-1 {
		return []string{ms[l.sessions%len(ms)].clientURL()}
	}
	eps := make([]string, len(ms))
	for i := range ms {
		eps[i] = ms[(l.id+i)%len(ms)].clientURL()
	}
	return eps
}

// cycle takes the lock with a new session, holds it and releases it. It
// returns false when it did not get the lock.
func (ls *lockSet) cycle(l *locker) bool {
	cl, err := client.New(ls.endpoints(l), client.WithHTTPClient(l.hc))
	if err != nil {
		panic(err) // the harness made the endpoints
	}
	l.sessions++
	// Not cancelled by halt: a grant cut off after it was sent would leave
	// a lease nobody revokes.
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	s, err := cl.NewSession(ctx, lockTTL)
	cancel()
	if err != nil {
		return false
	}
	defer ls.release(s)
	m := client.NewMutex(s, lockName)
	ctx, cancel = context.WithTimeout(ls.ctx, lockWaitTimeout)
	call := ls.rec.now()
	err = m.Lock(ctx)
	ret := ls.rec.now()
	cancel()
	if err != nil {
		if !ls.halting() {
			ls.mu.Lock()
			ls.lockErrs++
			ls.mu.Unlock()
		}
		return false
	}
	h := &hold{ls: ls, l: l, cl: cl, s: s, acq: lockAcquisition{Locker: l.id, Lease: s.Lease(), Token: m.Revision(), Call: call, Return: ret}}
	if old := l.late; old != nil {
		// An increment of the holder's previous hold, arriving late as
		// the request of a holder that lost the lock might: the fence
		// takes it only if nobody claimed the counter since that hold.
		l.late = nil
		old.cl, old.late = cl, true
		old.increment()
	}
	done := h.act(1 + l.rng.IntN(maxIncrements))
	if h.alive() { // it held the lock until here
		h.acq.KeyHeld = h.seeKey(m)
	}
	h.acq.End = ls.rec.now()
	ctx, cancel = context.WithTimeout(context.Background(), opTimeout)
	if err := m.Unlock(ctx); err != nil {
		h.acq.Unlock = err.Error()
	}
	cancel()
	ls.mu.Lock()
	ls.acqs = append(ls.acqs, h.acq)
	ls.mu.Unlock()
	if done && l.rng.IntN(3) == 0 {
		l.late = h
	}
	return true
}

// release closes a session, which revokes its lease, again until a revoke
// goes through: a holder cut off by a fault lets go as soon as the cluster
// is back rather than leave the lock to its lease's expiry, a TTL and an
// election timeout after the next leader took over. If it cannot, within
// releaseTimeout, the lease expires.
func (ls *lockSet) release(s *client.Session) {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	_ = poll(ctx, releaseTimeout, func() error {
		rctx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		return s.Close(rctx)
	})
}

// hold is one hold of the lock.
type hold struct {
	ls    *lockSet
	l     *locker
	cl    *client.Client
	s     *client.Session
	acq   lockAcquisition
	count uint64 // the count as the holder knows it
	late  bool   // the hold is over: its writes are late
}

// alive reports whether the holder's session is alive, and records when
// it saw it so.
func (h *hold) alive() bool {
	select {
	case <-h.s.Done():
		h.acq.Lost = true
		return false
	default:
		h.acq.Alive = append(h.acq.Alive, h.ls.rec.now())
		return true
	}
}

// act claims the counter and increments it n times. It reports whether
// every write was accepted, so that the holder knows the count.
func (h *hold) act(n int) bool {
	if !h.claim() {
		return false
	}
	for range n {
		if !h.increment() {
			return false
		}
	}
	return true
}

// claim writes the holder's token to fenceToken unless a higher one is
// there, and reads the count. The compare names the refusal, so that a
// missing token (nobody claimed yet) lets the claim through.
func (h *hold) claim() bool {
	tok := []byte(padded(h.acq.Token))
	w := h.newWrite(writeClaim)
	req := client.TxnRequest{
		Compare: []client.TxnCompare{{Key: []byte(fenceToken), Target: wire.TargetValue, Op: ">", Value: tok}},
		Success: []client.TxnOp{{Get: &client.TxnKey{Key: []byte(fenceToken)}}},
		Failure: []client.TxnOp{
			{Put: &client.TxnPut{Key: []byte(fenceToken), Value: tok}},
			{Put: &client.TxnPut{Key: []byte(fenceClaimPrefix + padded(h.acq.Token)), Value: []byte(w.ID)}},
			{Get: &client.TxnKey{Key: []byte(fenceCount)}},
		},
	}
	resp, ok := h.send(&w, req, 1, 3)
	if !ok {
		return false
	}
	if resp.Succeeded {
		w.Outcome, w.Seen = writeRefused, h.tokenOf(w, resp.Results[0].Get)
		h.ls.addWrite(w)
		return false
	}
	w.Outcome, w.Rev = writeAccepted, resp.Revision
	switch g := resp.Results[2].Get; {
	case g == nil || g.Found != (g.KV != nil):
		h.ls.unexpected("%v: the count's get answered %+v", w, resp.Results[2])
		return false
	case g.Found:
		n, err := strconv.ParseUint(string(g.KV.Value), 10, 64)
		if err != nil {
			h.ls.unexpected("%v: count %q", w, g.KV.Value)
		}
		w.Count = n
	}
	h.count = w.Count
	h.ls.addWrite(w)
	return true
}

// increment writes the count plus one, if fenceToken is still the
// holder's: then nobody claimed since the holder read the count.
func (h *hold) increment() bool {
	tok := []byte(padded(h.acq.Token))
	w := h.newWrite(writeIncrement)
	w.Count = h.count + 1
	req := client.TxnRequest{
		Compare: []client.TxnCompare{{Key: []byte(fenceToken), Target: wire.TargetValue, Op: "=", Value: tok}},
		Success: []client.TxnOp{
			{Put: &client.TxnPut{Key: []byte(fenceCount), Value: []byte(padded(w.Count))}},
			{Put: &client.TxnPut{Key: []byte(fenceIncPrefix + padded(w.Count)), Value: []byte(incValue(h.acq.Token, w.ID))}},
		},
		Failure: []client.TxnOp{{Get: &client.TxnKey{Key: []byte(fenceToken)}}},
	}
	resp, ok := h.send(&w, req, 2, 1)
	if !ok {
		return false
	}
	if !resp.Succeeded {
		w.Outcome, w.Seen = writeRefused, h.tokenOf(w, resp.Results[0].Get)
		h.ls.addWrite(w)
		return false
	}
	w.Outcome, w.Rev = writeAccepted, resp.Revision
	h.count = w.Count
	h.ls.addWrite(w)
	return true
}

// seeKey reads the holder's lock key, linearizably, and returns when it
// sent the read if the key was still the one its Lock created (else 0):
// until then no other holder can have had the lock, whatever the timers.
func (h *hold) seeKey(m *client.Mutex) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	sent := h.ls.rec.now()
	kv, err := h.cl.Get(ctx, m.Key(), client.Linearizable)
	if err != nil || kv.CreateRevision != h.acq.Token {
		return 0
	}
	return sent
}

func (h *hold) newWrite(kind writeKind) fencedWrite {
	h.l.seq++
	return fencedWrite{Locker: h.l.id, ID: fmt.Sprintf("l%d.%d", h.l.id, h.l.seq), Kind: kind, Token: h.acq.Token, Late: h.late}
}

// send sends a fenced write while the holder's session is alive (a late
// write once), again as long as no member could take it. It returns the
// answer when there is one whose shape is right (with nSuccess results if
// the compares held, nFailure if not); otherwise it records the write if
// it may have been applied, and returns false: the holder stops acting.
func (h *hold) send(w *fencedWrite, req client.TxnRequest, nSuccess, nFailure int) (client.TxnResponse, bool) {
	for {
		if h.ls.halting() || (!h.late && !h.alive()) {
			return client.TxnResponse{}, false
		}
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		w.Call = h.ls.rec.now()
		resp, err := h.cl.Txn(ctx, req)
		w.Return = h.ls.rec.now()
		cancel()
		var apiErr *client.APIError
		switch {
		case err == nil:
			want := nFailure
			if resp.Succeeded {
				want = nSuccess
			}
			if len(resp.Results) != want {
				h.ls.unexpected("%v: %d results, want %d: %+v", *w, len(resp.Results), want, resp)
				return resp, false
			}
			return resp, true
		case errors.Is(err, client.ErrUnavailable):
			if h.late {
				return resp, false // never sent: nothing happened
			}
			select {
			case <-time.After(unavailableBackoff):
			case <-h.ls.ctx.Done():
			}
			continue
		case errors.Is(err, client.ErrOutcomeUnknown):
		case errors.As(err, &apiErr):
			h.ls.unexpected("%v: %v", *w, err)
			return resp, false
		}
		// Anything else may have reached the cluster after it was sent.
		w.Outcome, w.Return, w.Err = writeUnknown, math.MaxInt64, err.Error()
		h.ls.addWrite(*w)
		return resp, false
	}
}

// tokenOf reads the token a refused write found.
func (h *hold) tokenOf(w fencedWrite, g *wire.TxnGetResult) uint64 {
	if g == nil || g.Found != (g.KV != nil) {
		h.ls.unexpected("%v: the token's get answered %+v", w, g)
		return 0
	}
	if !g.Found {
		return 0
	}
	n, err := strconv.ParseUint(string(g.KV.Value), 10, 64)
	if err != nil {
		h.ls.unexpected("%v: token %q", w, g.KV.Value)
	}
	return n
}

func (ls *lockSet) addWrite(w fencedWrite) {
	ls.mu.Lock()
	ls.writes = append(ls.writes, w)
	ls.mu.Unlock()
}

func (ls *lockSet) unexpected(format string, args ...any) {
	ls.mu.Lock()
	ls.unexpects = append(ls.unexpects, fmt.Sprintf(format, args...))
	ls.mu.Unlock()
}

// records returns what the lockers did, in the order it ended.
func (ls *lockSet) records() ([]lockAcquisition, []fencedWrite, int, []string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return slices.Clone(ls.acqs), slices.Clone(ls.writes), ls.lockErrs, slices.Clone(ls.unexpects)
}

// waitHolds waits until at least n holds that began (Lock returned) at
// since or later have ended, and, with final, until minAcquisitions holds
// in all have ended and an increment was acknowledged: like the workload's
// progress, a history in which the lock did nothing checks nothing.
func (ls *lockSet) waitHolds(ctx context.Context, since int64, n int, final bool, d time.Duration) error {
	return poll(ctx, d, func() error {
		ls.mu.Lock()
		defer ls.mu.Unlock()
		recent := 0
		for _, a := range ls.acqs {
			if a.Return >= since {
				recent++
			}
		}
		incs := 0
		for _, w := range ls.writes {
			if w.Kind == writeIncrement && w.Outcome == writeAccepted {
				incs++
			}
		}
		switch {
		case recent < n:
			return fmt.Errorf("only %d lock holds began since %s, in %v, want %d", recent, at(since), d, n)
		case final && (len(ls.acqs) < minAcquisitions || incs == 0):
			return fmt.Errorf("only %d lock holds and %d acknowledged increments in all, want %d and 1", len(ls.acqs), incs, minAcquisitions)
		}
		return nil
	})
}

// releaseLeases revokes the leases the lockers left behind (a session
// whose revoke failed during a fault, a grant of unknown outcome), rather
// than wait a TTL and an election timeout for them to expire, and waits
// until no member has a lease, so that no expiry changes the store while the
// members are compared. It returns how many it revoked.
func releaseLeases(ctx context.Context, c *cluster) (int, error) {
	revoked := 0
	err := poll(ctx, leasesGoneTimeout, func() error {
		for _, n := range c.members() {
			api := c.api(n.clientURL())
			rctx, cancel := context.WithTimeout(ctx, opTimeout)
			defer cancel()
			leases, err := api.Leases(rctx)
			if err != nil {
				return fmt.Errorf("leases of %s: %w", n.name(), err)
			}
			for _, l := range leases {
				if _, err := api.Revoke(rctx, l.ID); err == nil {
					revoked++
				}
			}
			if len(leases) > 0 {
				return fmt.Errorf("%s had %d leases, the first %d", n.name(), len(leases), leases[0].ID)
			}
		}
		return nil
	})
	return revoked, err
}

// lockReport is what the lockers did, as locks.json holds it.
type lockReport struct {
	Acquisitions []lockAcquisition `json:"acquisitions"`
	Writes       []fencedWrite     `json:"writes"`
	LockErrors   int               `json:"lock_errors"`
}
