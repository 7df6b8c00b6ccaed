package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/raftkv/raftkv/wire"
)

// The lease API's JSON shapes, shared with the server (package wire).
type (
	Lease        = wire.Lease
	LeaseStatus  = wire.LeaseStatus
	LeaseRevoked = wire.LeaseRevoked
)

func leasePath(id uint64, rest string) string {
	return "/v1/leases/" + strconv.FormatUint(id, 10) + rest
}

// Grant creates a lease of ttl (the server raises it to its minimum, one
// and a half election timeouts) with id, or an id the server chooses when
// id is 0. A grant that reached a server but whose answer was lost is an
// ErrOutcomeUnknown: an unknown lease costs nothing, it expires.
func (c *Client) Grant(ctx context.Context, ttl time.Duration, id uint64) (Lease, error) {
	body, err := json.Marshal(wire.LeaseGrantRequest{TTLMs: max(ttl.Milliseconds(), 1), ID: id})
	if err != nil {
		return Lease{}, err
	}
	resp, _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/leases", header: jsonHeader(), body: body})
	if err != nil {
		return Lease{}, fmt.Errorf("grant: %w", err)
	}
	var l Lease
	if err := decodeJSON(resp, &l); err != nil {
		return Lease{}, fmt.Errorf("grant: %w", err)
	}
	return l, nil
}

// Revoke removes a lease and deletes its keys, at one revision.
func (c *Client) Revoke(ctx context.Context, id uint64) (LeaseRevoked, error) {
	resp, _, err := c.do(ctx, &request{method: http.MethodDelete, path: leasePath(id, "")})
	if err != nil {
		return LeaseRevoked{}, fmt.Errorf("revoke: %w", err)
	}
	var r LeaseRevoked
	if err := decodeJSON(resp, &r); err != nil {
		return LeaseRevoked{}, fmt.Errorf("revoke: %w", err)
	}
	return r, nil
}

// KeepAliveOnce renews a lease for its TTL, once. Renewing is idempotent,
// so the client retries it on other endpoints.
func (c *Client) KeepAliveOnce(ctx context.Context, id uint64) (Lease, error) {
	resp, _, err := c.do(ctx, &request{method: http.MethodPost, path: leasePath(id, "/keepalive"), idempotent: true})
	if err != nil {
		return Lease{}, fmt.Errorf("keepalive: %w", err)
	}
	var l Lease
	if err := decodeJSON(resp, &l); err != nil {
		return Lease{}, fmt.Errorf("keepalive: %w", err)
	}
	return l, nil
}

// TimeToLive returns a lease with the time it has left and its keys.
func (c *Client) TimeToLive(ctx context.Context, id uint64) (LeaseStatus, error) {
	resp, _, err := c.do(ctx, &request{method: http.MethodGet, path: leasePath(id, ""), idempotent: true})
	if err != nil {
		return LeaseStatus{}, fmt.Errorf("lease: %w", err)
	}
	var st LeaseStatus
	if err := decodeJSON(resp, &st); err != nil {
		return LeaseStatus{}, fmt.Errorf("lease: %w", err)
	}
	return st, nil
}

// Leases lists every lease.
func (c *Client) Leases(ctx context.Context) ([]Lease, error) {
	resp, _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/leases", idempotent: true})
	if err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	var l wire.LeaseList
	if err := decodeJSON(resp, &l); err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	return l.Leases, nil
}

// KeepAlive holds a lease: it renews it every third of its TTL, on any
// endpoint, until Close, or until the lease is lost.
type KeepAlive struct {
	c      *Client
	lease  Lease
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	err error
}

// KeepAlive starts holding lease l, which the caller has just granted or
// renewed: its TTL counts from now. The returned keeper's Done is closed
// when it stops: after Close, or when the lease is lost (Err then matches
// ErrLeaseLost): it expired or was revoked, or no renewal succeeded within
// a TTL of the last one, at the moment that TTL runs out. A holder must then
// take whatever the lease guarded as gone.
func (c *Client) KeepAlive(l Lease) *KeepAlive { return c.keepAlive(l, time.Now()) }

// keepAlive holds l, whose TTL counts from since: from before the request
// that granted or renewed it was sent, when the caller knows that time.
func (c *Client) keepAlive(l Lease, since time.Time) *KeepAlive {
	ctx, cancel := context.WithCancel(context.Background())
	k := &KeepAlive{c: c, lease: l, cancel: cancel, done: make(chan struct{})}
	go k.run(ctx, since)
	return k
}

// Lease is the lease held.
func (k *KeepAlive) Lease() Lease { return k.lease }

// Done is closed when the keeper stops.
func (k *KeepAlive) Done() <-chan struct{} { return k.done }

// Err is why the keeper stopped: nil after Close, else an error matching
// ErrLeaseLost.
func (k *KeepAlive) Err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}

// Close stops renewing (the lease then expires unless revoked) and waits
// for the keeper to stop.
func (k *KeepAlive) Close() {
	k.cancel()
	<-k.done
}

func (k *KeepAlive) run(ctx context.Context, since time.Time) {
	defer close(k.done)
	ttl := time.Duration(k.lease.TTLMs) * time.Millisecond
	// The lease is good until a TTL after the last renewal the server
	// acknowledged, as measured here, from before the request was sent.
	// The keeper wakes at that deadline too, not at its next renewal
	// after it: the cluster may expire the lease from then on.
	deadline := since.Add(ttl)
	for {
		tick := time.NewTimer(min(ttl/3, time.Until(deadline)))
		select {
		case <-ctx.Done():
			tick.Stop()
			return
		case <-tick.C:
		}
		start := time.Now()
		if !start.Before(deadline) {
			k.lost(fmt.Errorf("%w: lease %d: no renewal succeeded within its TTL of %v", ErrLeaseLost, k.lease.ID, ttl))
			return
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		_, err := k.c.KeepAliveOnce(rctx, k.lease.ID)
		cancel()
		switch {
		case err == nil:
			deadline = start.Add(ttl)
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrLeaseNotFound):
			k.lost(fmt.Errorf("%w: %w", ErrLeaseLost, err))
			return
		}
		// Other errors (no leader, endpoints down) are retried at the
		// next tick, until the deadline.
	}
}

func (k *KeepAlive) lost(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.err = err
}
