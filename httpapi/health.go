package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/raftkv/raftkv/kvstore"
	"github.com/raftkv/raftkv/raftnode"
	"github.com/raftkv/raftkv/wire"
)

const (
	// readyCatchUp is how long /readyz waits for the state machine to
	// apply the commit index the node knew when asked. Under a steady
	// write load a healthy node's applied index trails its commit index by
	// the batch in flight; waiting a moment keeps readiness from flapping.
	readyCatchUp = 500 * time.Millisecond
	// healthReadTimeout bounds the linearizable read of /health, as etcd's
	// health check does.
	healthReadTimeout = time.Second
)

// raftStates maps raft's state names to the API's.
var raftStates = map[string]string{
	"StateFollower":     "follower",
	"StateCandidate":    "candidate",
	"StatePreCandidate": "pre-candidate",
	"StateLeader":       "leader",
}

// serveStatus serves GET /v1/status: this node's own view, never forwarded.
func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request, _ string) error {
	q, err := parseQuery(r)
	if err != nil {
		return err
	}
	if err := onlyParams(q, "hash"); err != nil {
		return err
	}
	hash, err := boolParam(q, "hash")
	if err != nil {
		return err
	}
	c, kv := s.cfg.Cluster, s.cfg.KV
	st := c.Status()
	// The store shows a change (and its writer is answered) a moment before
	// Applied moves past the change's batch; the revision is the index of
	// the last change, so the store has applied at least that.
	revision := kv.Store().Revision()
	applied := max(kv.Applied(), revision)
	out := wire.Status{
		ID:        c.ID(),
		Version:   s.cfg.Version,
		ClusterID: raftnode.FormatID(c.ClusterID()),
		Leader:    c.Leader(),
		Term:      c.Term(),
		// The state machine may have applied entries of a Ready whose
		// commit index is not published yet; what is applied is committed.
		CommitIndex:   max(st.Commit, applied),
		AppliedIndex:  applied,
		SnapshotIndex: st.Snapshot,
		Keys:          uint64(kv.Store().Len()),
		Revision:      revision,
		Watchers:      kv.Watchers(),
		UptimeSeconds: math.Round(time.Since(c.StartedAt()).Seconds()*1000) / 1000,
	}
	out.RaftState = raftStates[st.RaftState]
	if out.RaftState == "" {
		out.RaftState = "follower" // raft starts as a follower; no Ready yet
	}
	for _, m := range c.Members() {
		if m.ID == out.ID {
			out.Name = m.Name
			if m.IsLearner && out.RaftState == "follower" {
				out.RaftState = "learner"
			}
		}
	}
	out.DataDirBytes, out.WALFiles, out.SnapshotFiles = raftnode.DataDirUsage(c.DataDir())
	if f, ok := c.(faulty); ok {
		out.Fault = f.Fault()
	}
	// Hashing reads every key, so it is done only when asked for.
	if hash {
		out.StateHash, out.HashRevision = kv.Store().Hash()
	}
	writeJSON(w, out)
	return nil
}

// writeProbe writes a probe's answer: 200, or 503 with Retry-After.
func writeProbe(w http.ResponseWriter, ok bool, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type probeStatus struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// serveLivez answers while the process serves requests at all.
func (s *Server) serveLivez(w http.ResponseWriter, _ *http.Request, _ string) error {
	writeProbe(w, true, probeStatus{Status: "ok"})
	return nil
}

// serveReadyz answers whether the node can serve: it knows a leader and has
// applied what it knows committed.
func (s *Server) serveReadyz(w http.ResponseWriter, r *http.Request, _ string) error {
	if reason := s.unready(r.Context()); reason != "" {
		writeProbe(w, false, probeStatus{Status: "unready", Reason: reason})
		return nil
	}
	writeProbe(w, true, probeStatus{Status: "ready"})
	return nil
}

type healthStatus struct {
	Health string `json:"health"`
	Reason string `json:"reason"`
}

// serveHealth is etcd's health check: ready, and a linearizable read
// succeeds within healthReadTimeout.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request, _ string) error {
	reason := s.unready(r.Context())
	if reason == "" {
		ctx, cancel := context.WithTimeout(r.Context(), healthReadTimeout)
		defer cancel()
		// No key is empty, so this read finds nothing; what counts is that
		// the leader confirmed the read index and this node applied it.
		_, _, err := s.cfg.KV.Get(ctx, nil, false)
		if err != nil && !errors.Is(err, kvstore.ErrKeyNotFound) {
			reason = "linearizable read failed: " + err.Error()
		}
	}
	if reason != "" {
		writeProbe(w, false, healthStatus{Health: "false", Reason: reason})
		return nil
	}
	writeProbe(w, true, healthStatus{Health: "true"})
	return nil
}

// faulty is a Cluster that can say what keeps it from serving safely (a
// disk failure it is stopping for, a snapshot it cannot store), or "";
// raftnode.Node is one.
type faulty interface {
	Fault() string
}

// unready returns why the node is not ready, or "" when it is.
func (s *Server) unready(ctx context.Context) string {
	if f, ok := s.cfg.Cluster.(faulty); ok {
		if reason := f.Fault(); reason != "" {
			return reason
		}
	}
	if s.cfg.Cluster.Leader() == 0 {
		return "no leader"
	}
	commit := s.cfg.Cluster.Status().Commit
	if s.cfg.KV.Applied() >= commit {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, readyCatchUp)
	defer cancel()
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case <-poll.C:
			if s.cfg.KV.Applied() >= commit {
				return ""
			}
		case <-ctx.Done():
			return fmt.Sprintf("applied index %d is behind commit index %d", s.cfg.KV.Applied(), commit)
		}
	}
}
