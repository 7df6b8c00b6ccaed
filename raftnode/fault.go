package raftnode

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/etcdserver/api/rafthttp"
	"go.etcd.io/raft/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Fault says what keeps the node from serving safely, or "" when nothing
// does: why it is stopping after a failure (its WAL directory removed, a
// write or fsync failed), or that it cannot store the snapshot the leader
// sends it. /readyz and /v1/status report it.
func (n *Node) Fault() string {
	if f := n.stopFault.Load(); f != nil {
		return *f
	}
	if f := n.snapFault.Load(); f != nil {
		return *f
	}
	return ""
}

// setStopFault records why the node stops on a failure.
func (n *Node) setStopFault(err error) {
	msg := "stopping: " + err.Error()
	n.stopFault.Store(&msg)
}

// Snapshot retries. A follower that cannot store a snapshot (its disk is
// full) answers the leader's transfer with an error; raft marks it for a
// retry at the next heartbeat, so without a pause the leader would stream
// the whole state to it five times a second. The leader waits
// snapshotRetryMin after a failed transfer to a member, twice as long after
// each further one, up to snapshotRetryMax; a transfer that succeeds ends
// the pause.
const (
	snapshotRetryMin = time.Second
	snapshotRetryMax = time.Minute
)

// snapshotRetries is the leader's record of failed snapshot transfers, per
// member. rafthttp reports outcomes from its own goroutines; the Ready loop
// asks before sending.
type snapshotRetries struct {
	mu    sync.Mutex
	peers map[uint64]*snapshotRetry
}

type snapshotRetry struct {
	failures int
	wait     time.Duration
	notUntil time.Time
}

// wait returns how long a snapshot to member id must still wait.
func (r *snapshotRetries) waitFor(id uint64, now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.peers[id]; p != nil && now.Before(p.notUntil) {
		return p.notUntil.Sub(now)
	}
	return 0
}

// report records the outcome of a transfer to id and returns the pause it
// starts (0 after a success) and how many transfers failed in a row.
func (r *snapshotRetries) report(id uint64, failed bool, now time.Time) (time.Duration, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !failed {
		delete(r.peers, id)
		return 0, 0
	}
	if r.peers == nil {
		r.peers = map[uint64]*snapshotRetry{}
	}
	p := r.peers[id]
	if p == nil {
		p = &snapshotRetry{wait: snapshotRetryMin / 2}
		r.peers[id] = p
	}
	p.failures++
	p.wait = min(2*p.wait, snapshotRetryMax)
	p.notUntil = now.Add(p.wait)
	return p.wait, p.failures
}

// snapshotReporter is the transport's raft with snapshot outcomes recorded
// for the pause between retries.
type snapshotReporter struct{ transportRaft }

func (t snapshotReporter) ReportSnapshot(id uint64, status raft.SnapshotStatus) {
	n := t.n
	failed := status == raft.SnapshotFailure
	wait, failures := n.snapRetries.report(id, failed, time.Now())
	switch {
	case failed && failures == 1:
		n.lg.Warn("sending a snapshot failed; retrying with a growing pause, not at every heartbeat (the member's log says why)",
			zap.Uint64("to", id), zap.Stringer("retry-in", wait))
	case failed && wait == snapshotRetryMax && failures%10 == 0:
		n.lg.Warn("sending a snapshot keeps failing", zap.Uint64("to", id), zap.Int("failures", failures), zap.Stringer("retry-in", wait))
	}
	t.transportRaft.ReportSnapshot(id, status)
}

// snapshotDelayed reports, before a snapshot is built for m's recipient,
// that the recipient is in a pause after failed transfers; raft is told
// the snapshot failed, and asks again at a later heartbeat.
func (n *Node) snapshotDelayed(to uint64) bool {
	if n.snapRetries.waitFor(to, time.Now()) == 0 {
		return false
	}
	n.node.ReportSnapshot(to, raft.SnapshotFailure)
	return true
}

// watchSnapshotReceipts wraps the peer handler to learn whether this member
// could store the snapshots the leader sends it: rafthttp answers 500 when
// it cannot save one (the disk is full) and logs it at each retry. The first
// failure is logged once here and reported by Fault until a snapshot is
// stored.
func (n *Node) watchSnapshotReceipts(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != rafthttp.RaftSnapshotPrefix {
			h.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		switch {
		case rec.status == http.StatusInternalServerError && strings.HasPrefix(rec.body.String(), "failed to save KV snapshot"):
			why := strings.TrimSpace(rec.body.String())
			why = strings.TrimSuffix(strings.TrimPrefix(why, "failed to save KV snapshot ("), ")")
			msg := "cannot store the snapshot the leader sends: " + why + "; free space in " + n.cfg.DataDir + " (the leader retries with a growing pause)"
			if prev := n.snapFault.Swap(&msg); prev == nil {
				n.lg.Error(msg)
			}
		case rec.status < 300 && rec.status != 0:
			if n.snapFault.Swap(nil) != nil {
				n.lg.Info("stored a snapshot from the leader again")
			}
		}
	})
}

// statusRecorder keeps the status and the start of the body of a response.
type statusRecorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if room := 512 - r.body.Len(); room > 0 {
		r.body.Write(b[:min(len(b), room)])
	}
	return r.ResponseWriter.Write(b)
}

// snapshotSaveFailure is rafthttp's warning for each snapshot it could not
// save; watchSnapshotReceipts says it once instead.
const snapshotSaveFailure = "failed to save incoming database snapshot"

// quietRepeats demotes rafthttp's per-retry warnings that this package
// reports once itself.
func quietRepeats(ent zapcore.Entry) bool { return ent.Message == snapshotSaveFailure }
