package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

const (
	// nodes is the size of every cluster under test.
	nodes = 3
	// readyTimeout bounds a cluster's start: processes up, a leader elected
	// and every node answering.
	readyTimeout = 60 * time.Second
	// pollInterval is the pause between readiness checks.
	pollInterval = 50 * time.Millisecond
	// probeTimeout bounds one readiness check, so that a node that accepts
	// the connection and never answers cannot stall the poll.
	probeTimeout = time.Second
)

// store is one node of a cluster as the workloads see it: the operations the
// matrix measures and nothing more, so that both systems run the same loop.
type store interface {
	put(ctx context.Context, key string, value []byte) error
	get(ctx context.Context, key string, serializable bool) error
	// countKeys returns how many keys the node's own state holds (the
	// harness writes no keys but its workloads'), without asking the leader.
	countKeys(ctx context.Context) (int64, error)
	close() error
}

// cluster is a running three-node cluster of either system. stop ends it on
// every path: the caller that got a cluster defers its stop.
type cluster struct {
	system string
	dir    string  // data dirs of every node; removed by stop
	procs  []*proc // in node order
	stores []store // one client per node, in node order
}

// pids are the server processes, whose CPU time the cells measure.
func (c *cluster) pids() []int {
	pids := make([]int, len(c.procs))
	for i, p := range c.procs {
		pids[i] = p.pid()
	}
	return pids
}

// peakRSSKiB reads every server's peak RSS; call it before stop.
func (c *cluster) peakRSSKiB() ([]uint64, error) {
	peak, _, err := c.rssKiB()
	return peak, err
}

// rssKiB reads every server's peak RSS (VmHWM) and current RSS (VmRSS), in
// node order; call it before stop.
func (c *cluster) rssKiB() (peak, current []uint64, err error) {
	peak = make([]uint64, len(c.procs))
	current = make([]uint64, len(c.procs))
	for i, p := range c.procs {
		if peak[i], current[i], err = rssKiB(p.pid()); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p.name, err)
		}
	}
	return peak, current, nil
}

// stop closes the clients, stops the servers and removes their data. The
// data goes last, once no process can write to it any more.
func (c *cluster) stop() error {
	var errs []error
	for _, s := range c.stores {
		if err := s.close(); err != nil {
			errs = append(errs, fmt.Errorf("%s: close client: %w", c.system, err))
		}
	}
	c.stores = nil
	if err := stopAll(c.procs); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", c.system, err))
	}
	if c.dir != "" {
		if err := os.RemoveAll(c.dir); err != nil {
			errs = append(errs, fmt.Errorf("%s: remove data: %w", c.system, err))
		}
		c.dir = ""
	}
	return errors.Join(errs...)
}

// waitUntil calls check every pollInterval until it succeeds, one of procs
// exits, ctx ends or readyTimeout passes. Polling with a deadline, rather
// than sleeping a fixed time, makes start-up as fast as the servers allow
// and still bounded when they never come up.
func waitUntil(ctx context.Context, what string, procs []*proc, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		probeCtx, probeCancel := context.WithTimeout(ctx, probeTimeout)
		err := check(probeCtx)
		probeCancel()
		if err == nil {
			return nil
		}
		for _, p := range procs {
			if exitErr := p.exited(); exitErr != nil {
				return fmt.Errorf("wait for %s: %w", what, exitErr)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w (last check: %v)", what, context.Cause(ctx), err)
		case <-ticker.C:
		}
	}
}
