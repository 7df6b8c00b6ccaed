//go:build unix

package robustness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/internal/proctest"
)

// Isolation limits: how long an isolation may wait for the others to
// compact their logs past the isolated node's, and by how many entries past
// its commit index (its log may hold a few uncommitted entries more).
const (
	isolationTimeout = 30 * time.Second
	snapshotMargin   = 50
)

// faultKind names a fault.
type faultKind string

// The faults. Each heals before the next one starts.
const (
	killRandom      faultKind = "kill-random"      // kill -9 one node, restart it after Duration
	killLeader      faultKind = "kill-leader"      // kill -9 the leader, restart it after Duration
	killAll         faultKind = "kill-all"         // kill -9 every node at once, restart them after Duration
	stopLeader      faultKind = "sigstop-leader"   // SIGSTOP the leader for Duration, then SIGCONT
	isolateLeader   faultKind = "isolate-leader"   // blackhole the leader's proxy
	isolateFollower faultKind = "isolate-follower" // blackhole a follower's proxy
	delayNet        faultKind = "delay"            // delay one node's (or every node's) proxy
	transferLeader  faultKind = "leader-transfer"  // POST /v1/leader/transfer
	replaceMember   faultKind = "replace-member"   // remove a member, wipe it, add it back under a new id
)

// faultKinds lists every kind, in the order of the short pass.
var faultKinds = []faultKind{killRandom, killLeader, killAll, stopLeader, isolateFollower, isolateLeader,
	delayNet, transferLeader, replaceMember}

// fault is one fault with its parameters, all drawn from the history's
// seeded random source.
type fault struct {
	Kind faultKind `json:"kind"`
	// Pick chooses among the candidate nodes (the node to kill, the
	// follower to isolate, the node a request is sent to).
	Pick int `json:"pick"`
	// Duration is the down time, pause, isolation or delay.
	Duration time.Duration `json:"duration"`
	// Latency and Jitter are the delay's.
	Latency time.Duration `json:"latency,omitempty"`
	Jitter  time.Duration `json:"jitter,omitempty"`
	// AllNodes delays every node's peer traffic, not one node's.
	AllNodes bool `json:"all_nodes,omitempty"`
	// Snapshot keeps an isolation up until the node can only catch up from
	// a snapshot, and checks that it does.
	Snapshot bool `json:"snapshot,omitempty"`
	// Learner adds the replacement as a learner and promotes it.
	Learner bool `json:"learner,omitempty"`
	// Leader replaces the leader rather than a follower.
	Leader bool `json:"leader,omitempty"`
	// Before is a pause before the fault, once the workload made progress.
	Before time.Duration `json:"before"`
}

func (f fault) String() string {
	var b strings.Builder
	b.WriteString(string(f.Kind))
	var opts []string
	switch f.Kind {
	case killRandom, killLeader, killAll:
		opts = append(opts, "down "+f.Duration.String())
	case stopLeader:
		opts = append(opts, "for "+f.Duration.String())
	case isolateLeader, isolateFollower:
		if f.Snapshot {
			opts = append(opts, "until a snapshot is needed")
		} else {
			opts = append(opts, "for "+f.Duration.String())
		}
	case delayNet:
		who := "one node"
		if f.AllNodes {
			who = "all nodes"
		}
		opts = append(opts, fmt.Sprintf("%s, %v±%v for %v", who, f.Latency, f.Jitter, f.Duration))
	case replaceMember:
		if f.Leader {
			opts = append(opts, "the leader")
		}
		if f.Learner {
			opts = append(opts, "as learner")
		}
	}
	opts = append(opts, "pick "+strconv.Itoa(f.Pick))
	fmt.Fprintf(&b, "(%s)", strings.Join(opts, ", "))
	return b.String()
}

// newFault draws a fault of kind from rng.
func newFault(rng *rand.Rand, kind faultKind) fault {
	between := func(lo, hi time.Duration) time.Duration {
		return (lo + time.Duration(rng.Int64N(int64(hi-lo)))).Round(10 * time.Millisecond)
	}
	f := fault{Kind: kind, Pick: rng.IntN(clusterSize), Before: between(0, 300*time.Millisecond)}
	switch kind {
	case killRandom, killLeader, killAll:
		f.Duration = between(200*time.Millisecond, 2*time.Second)
	case stopLeader:
		f.Duration = between(500*time.Millisecond, 3*time.Second)
	case isolateLeader, isolateFollower:
		f.Duration = between(500*time.Millisecond, 3*time.Second)
		f.Snapshot = rng.IntN(2) == 0
	case delayNet:
		f.Duration = between(time.Second, 3*time.Second)
		f.Latency = between(20*time.Millisecond, 250*time.Millisecond)
		f.Jitter = between(0, 50*time.Millisecond)
		f.AllNodes = rng.IntN(3) == 0
	case replaceMember:
		f.Learner = rng.IntN(2) == 0
		f.Leader = rng.IntN(3) == 0
	}
	return f
}

// randomSchedule draws one to three faults of any kinds.
func randomSchedule(rng *rand.Rand) []fault {
	faults := make([]fault, 1+rng.IntN(3))
	for i := range faults {
		faults[i] = newFault(rng, faultKinds[rng.IntN(len(faultKinds))])
	}
	return faults
}

// faultRecord is what happened when a fault ran.
type faultRecord struct {
	Fault  fault  `json:"fault"`
	Target string `json:"target"`
	Start  int64  `json:"start_ns"`
	End    int64  `json:"end_ns"` // healed (the node restarted, the network restored)
	Note   string `json:"note,omitempty"`
	// LeaderKilled is when the leader was killed, for the failover time:
	// from then to the first acknowledged write sent after it.
	LeaderKilled int64 `json:"leader_killed_ns,omitempty"`
	// CatchUp is how long an isolated node took from the heal to a
	// snapshot from the leader; zero when it needed none.
	CatchUp time.Duration `json:"snapshot_catch_up,omitempty"`
	// Joined is how long a new member took from its start to applying what
	// the others had applied then.
	Joined time.Duration `json:"joined,omitempty"`
}

// nemesis injects the faults of one history.
type nemesis struct {
	c    *cluster
	rec  *recorder
	logf func(format string, args ...any)
	// blackhole isolates with the proxy's BlackholeTx/Rx, which drops
	// bytes from the middle of live TCP streams, instead of PauseTx/Rx,
	// which holds them: see isolate. ROBUSTNESS_BLACKHOLE=1 sets it.
	blackhole bool
}

// inject runs f to its end (the fault healed) and records it.
func (n *nemesis) inject(ctx context.Context, f fault) (faultRecord, error) {
	select {
	case <-time.After(f.Before):
	case <-ctx.Done():
		return faultRecord{}, ctx.Err()
	}
	r := faultRecord{Fault: f, Start: n.rec.now()}
	n.logf("fault %v: start", f)
	var err error
	switch f.Kind {
	case killRandom, killLeader:
		err = n.kill(ctx, &r)
	case killAll:
		err = n.killAll(ctx, &r)
	case stopLeader:
		err = n.stopLeader(ctx, &r)
	case isolateLeader, isolateFollower:
		err = n.isolate(ctx, &r)
	case delayNet:
		err = n.delay(ctx, &r)
	case transferLeader:
		err = n.transfer(ctx, &r)
	case replaceMember:
		err = n.replace(ctx, &r)
	default:
		err = fmt.Errorf("unknown fault kind %q", f.Kind)
	}
	r.End = n.rec.now()
	details := r.Note
	if err != nil {
		details += " error: " + err.Error()
	}
	n.rec.annotate(r.Start, r.End, fmt.Sprintf("%s %s", f.Kind, r.Target), details)
	n.logf("fault %s on %s: healed after %v; %s", f.Kind, r.Target, time.Duration(r.End-r.Start).Round(time.Millisecond), r.Note)
	if err != nil {
		return r, fmt.Errorf("fault %v: %w", f, err)
	}
	return r, nil
}

// running returns the members whose process is up, by slot.
func (n *nemesis) running() []*node {
	var out []*node
	for _, m := range n.c.members() {
		if m.running() {
			out = append(out, m)
		}
	}
	return out
}

// roles returns the leader and the other running members.
func (n *nemesis) roles(ctx context.Context) (*node, []*node, error) {
	leader, err := n.c.leader(ctx)
	if err != nil {
		return nil, nil, err
	}
	var others []*node
	for _, m := range n.running() {
		if m != leader {
			others = append(others, m)
		}
	}
	return leader, others, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (n *nemesis) kill(ctx context.Context, r *faultRecord) error {
	leader, others, err := n.roles(ctx)
	if err != nil {
		return err
	}
	victim := leader
	if r.Fault.Kind == killRandom {
		all := append([]*node{leader}, others...)
		slices.SortFunc(all, func(a, b *node) int { return a.slot - b.slot })
		victim = all[r.Fault.Pick%len(all)]
	}
	r.Target = victim.name()
	if victim == leader {
		r.Target += " (leader)"
		r.LeaderKilled = n.rec.now()
	}
	n.c.kill(victim)
	if err := sleep(ctx, r.Fault.Duration); err != nil {
		return err
	}
	return n.c.restart(ctx, victim)
}

func (n *nemesis) killAll(ctx context.Context, r *faultRecord) error {
	nodes := n.running()
	r.Target = "all"
	for _, m := range nodes {
		m.proc.sigkill()
	}
	for _, m := range nodes {
		m.proc.Kill() // waits
		n.c.closeProxy(m)
	}
	if err := sleep(ctx, r.Fault.Duration); err != nil {
		return err
	}
	for _, m := range nodes {
		if err := n.c.launch(m); err != nil {
			return err
		}
	}
	for _, m := range nodes {
		err := n.c.waitLive(ctx, m)
		if errors.Is(err, errPortTaken) {
			err = n.c.relaunch(ctx, m) // on new ports
		}
		if err != nil {
			return err
		}
	}
	for _, m := range nodes {
		if err := n.c.startProxy(m); err != nil {
			return err
		}
	}
	return nil
}

func (n *nemesis) stopLeader(ctx context.Context, r *faultRecord) error {
	leader, err := n.c.leader(ctx)
	if err != nil {
		return err
	}
	r.Target = leader.name()
	if err := leader.proc.pause(); err != nil {
		return err
	}
	sleepErr := sleep(ctx, r.Fault.Duration)
	if err := leader.proc.resume(); err != nil {
		return err
	}
	return sleepErr
}

func (n *nemesis) delay(ctx context.Context, r *faultRecord) error {
	targets := n.running()
	if !r.Fault.AllNodes {
		targets = []*node{targets[r.Fault.Pick%len(targets)]}
	}
	var names []string
	for _, m := range targets {
		names = append(names, m.name())
		m.proxy.DelayTx(r.Fault.Latency, r.Fault.Jitter)
		m.proxy.DelayRx(r.Fault.Latency, r.Fault.Jitter)
	}
	r.Target = strings.Join(names, ",")
	err := sleep(ctx, r.Fault.Duration)
	for _, m := range targets {
		m.proxy.UndelayTx()
		m.proxy.UndelayRx()
	}
	return err
}

func (n *nemesis) transfer(ctx context.Context, r *faultRecord) error {
	leader, others, err := n.roles(ctx)
	if err != nil {
		return err
	}
	var to uint64 // 0: the most caught-up voter
	if len(others) > 0 && r.Fault.Pick < len(others) {
		to = others[r.Fault.Pick].id
	}
	via := append([]*node{leader}, others...)[r.Fault.Pick%(len(others)+1)]
	r.Target = fmt.Sprintf("%s -> %d via %s", leader.name(), to, via.name())
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := n.c.api(via.clientURL()).LeaderTransfer(rctx, to)
	var apiErr *client.APIError
	switch {
	case err == nil:
		r.Note = fmt.Sprintf("leader %d in term %d", res.Leader, res.Term)
	case errors.Is(err, client.ErrOutcomeUnknown), errors.Is(err, client.ErrUnavailable), errors.Is(err, client.ErrConflict):
		r.Note = "transfer refused or unknown: " + err.Error()
	case errors.As(err, &apiErr) && apiErr.Status >= 500:
		n.c.problem("leader transfer via %s: %v", via.name(), err)
	default:
		r.Note = "transfer failed: " + err.Error()
	}
	return nil
}

// replace removes a member (the leader or a follower), waits until its
// process stops by itself, wipes its data and adds a new member with a new
// id in its slot: as a voter, or as a learner promoted once it caught up.
func (n *nemesis) replace(ctx context.Context, r *faultRecord) error {
	leader, others, err := n.roles(ctx)
	if err != nil {
		return err
	}
	old := leader
	if !r.Fault.Leader && len(others) > 0 {
		old = others[r.Fault.Pick%len(others)]
	}
	nn, err := n.c.replace(ctx, old, r.Fault.Learner)
	r.Target = old.name()
	if nn != nil {
		r.Target += " -> " + nn.name()
	}
	if err != nil {
		return err
	}
	// The new member must catch up, from the leader's snapshot: until it
	// does, the cluster has three voters of which only two work.
	started := time.Now()
	var target uint64
	for _, m := range n.running() {
		if m != nn {
			if st, err := n.c.status(ctx, m); err == nil {
				target = max(target, st.AppliedIndex)
			}
		}
	}
	err = poll(ctx, readyTimeout, func() error {
		st, err := n.c.status(ctx, nn)
		if err != nil {
			return err
		}
		if st.AppliedIndex < target {
			return fmt.Errorf("%s has applied %d, the others %d", nn.name(), st.AppliedIndex, target)
		}
		return nil
	})
	if err != nil {
		if line := firstLineWith(tail(nn.logPath, 1<<20), "should never happen"); line != "" {
			err = fmt.Errorf("%w; its log says: %s", err, line)
		}
		return fmt.Errorf("the new member did not catch up: %w", err)
	}
	r.Joined = time.Since(started)
	r.Note = fmt.Sprintf("%s caught up to index %d %v after it started", nn.name(), target, r.Joined.Round(time.Millisecond))
	return nil
}

// replace is replaceMember's work on the cluster.
func (c *cluster) replace(ctx context.Context, old *node, learner bool) (*node, error) {
	via := c.another(old)
	if via == nil {
		return nil, errors.New("no other member runs")
	}
	if err := c.remove(ctx, via, old); err != nil {
		return nil, err
	}
	// The node comes back where it was, at the same peer URL and client
	// port, with its data dir wiped, under a new id.
	if err := os.RemoveAll(old.dataDir); err != nil {
		return nil, err
	}
	ports, err := proctest.FreePorts(1)
	if err != nil {
		return nil, err
	}
	nn := &node{
		slot:       old.slot,
		peerURL:    old.peerURL,
		peerAddr:   "127.0.0.1:" + strconv.Itoa(ports[0]),
		clientPort: old.clientPort,
		dataDir:    old.dataDir,
	}
	err = c.add(ctx, via, nn, learner, func() {
		c.slots[old.slot] = nn
		c.retired = append(c.retired, old)
	})
	return nn, err
}

// another returns a running member other than n.
func (c *cluster) another(n *node) *node {
	for _, m := range c.members() {
		if m != n && m.running() {
			return m
		}
	}
	return nil
}

// remove removes member old through via and waits until its process stops
// by itself, as a removed member must.
func (c *cluster) remove(ctx context.Context, via, old *node) error {
	api := c.api(via.clientURL())
	old.proc.expected.Store(true) // it stops by itself once removed
	err := poll(ctx, readyTimeout, func() error {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := api.MemberRemove(rctx, old.id)
		switch {
		case err == nil, errors.Is(err, client.ErrMemberNotFound), errors.Is(err, client.ErrMemberRemoved):
			return nil // an earlier attempt of unknown outcome may have done it
		case errors.Is(err, client.ErrOutcomeUnknown), errors.Is(err, client.ErrUnavailable), errors.Is(err, client.ErrConfChangePending):
			return err
		}
		return permanent(err)
	})
	if err != nil {
		return fmt.Errorf("remove member %d: %w", old.id, err)
	}
	if !old.proc.WaitExit(removedTimeout) {
		c.problem("%s was removed but did not stop within %v", old.name(), removedTimeout)
		old.proc.Kill()
	} else if code := old.proc.ExitCode(); code != 0 {
		c.problem("%s was removed and exited with code %d, want 0: %s", old.name(), code, lastLine(old.logPath))
	}
	c.closeProxy(old)
	return nil
}

// add adds nn (its slot, peer URL, addresses and data dir set) through via
// as a new member under the id the cluster chooses, starts it with --join
// and, for a learner, promotes it once it has caught up. install, called
// under the cluster's lock once the node serves, puts it in the member list.
func (c *cluster) add(ctx context.Context, via, nn *node, learner bool, install func()) error {
	api := c.api(via.clientURL())
	var m client.Member
	err := poll(ctx, readyTimeout, func() error {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var err error
		m, err = api.MemberAdd(rctx, client.MemberAddRequest{PeerURLs: []string{nn.peerURL}, Learner: learner})
		switch {
		case err == nil:
			return nil
		case errors.Is(err, client.ErrOutcomeUnknown):
			if found, ok := c.memberWithPeerURL(ctx, api, nn.peerURL); ok {
				m = found
				return nil
			}
			return err
		case errors.Is(err, client.ErrUnavailable), errors.Is(err, client.ErrConfChangePending), errors.Is(err, client.ErrNotEnoughStarted):
			return err
		}
		return permanent(err)
	})
	if err != nil {
		return fmt.Errorf("add member at %s: %w", nn.peerURL, err)
	}
	nn.id, nn.join = m.ID, true
	nn.logPath = filepath.Join(c.dir, fmt.Sprintf("n%d.log", nn.id))
	// --cluster names member i at position i. A removed member whose URL
	// a later one took gets a placeholder nobody listens on: the list only
	// serves the joining node's discovery.
	c.mu.Lock()
	c.peerURLs[nn.id] = nn.peerURL
	owner := map[string]uint64{} // URL → the latest id that used it
	for id, u := range c.peerURLs {
		owner[u] = max(owner[u], id)
	}
	urls := make([]string, nn.id)
	for i := range urls {
		id := uint64(i + 1)
		urls[i] = c.peerURLs[id]
		if urls[i] != "" && owner[urls[i]] != id {
			urls[i] = fmt.Sprintf("http://127.0.0.1:1%04d", id) // unique, and closed
		}
	}
	c.mu.Unlock()
	if slices.Contains(urls, "") {
		return fmt.Errorf("member %d: the harness does not know the peer URL of every lower id: %v", nn.id, urls)
	}
	nn.clusterArg = strings.Join(urls, ",")
	if err := c.relaunch(ctx, nn); err != nil {
		return err
	}
	if err := c.startProxy(nn); err != nil {
		nn.proc.Kill()
		return err
	}
	c.mu.Lock()
	install()
	c.mu.Unlock()
	if !learner {
		return nil
	}
	err = poll(ctx, readyTimeout, func() error {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := api.MemberPromote(rctx, nn.id)
		switch {
		case err == nil, errors.Is(err, client.ErrNotLearner):
			return nil
		case errors.Is(err, client.ErrOutcomeUnknown):
			if found, ok := c.memberWithPeerURL(ctx, api, nn.peerURL); ok && !found.IsLearner {
				return nil
			}
			return err
		case errors.Is(err, client.ErrLearnerNotReady), errors.Is(err, client.ErrUnavailable), errors.Is(err, client.ErrConfChangePending):
			return err
		}
		return permanent(err)
	})
	if err != nil {
		return fmt.Errorf("promote member %d: %w", nn.id, err)
	}
	return nil
}

// memberWithPeerURL looks the member with peerURL up in the member list.
func (c *cluster) memberWithPeerURL(ctx context.Context, api *client.Client, peerURL string) (client.Member, bool) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	list, err := api.MemberList(rctx)
	if err != nil {
		return client.Member{}, false
	}
	for _, m := range list.Members {
		if slices.Contains(m.PeerURLs, peerURL) {
			return m, true
		}
	}
	return client.Member{}, false
}

// isolationSample is the state of an isolated node and of the others.
type isolationSample struct {
	at             time.Duration // since the isolation began
	applied        uint64        // the isolated node's
	commit         uint64        // the isolated node's
	othersApplied  uint64        // the highest of the others
	othersSnapshot uint64        // the lowest snapshot index of the others
}

func (s isolationSample) String() string {
	return fmt.Sprintf("%v: isolated applied %d (commit %d), others applied %d (snapshot %d)",
		s.at.Round(10*time.Millisecond), s.applied, s.commit, s.othersApplied, s.othersSnapshot)
}

// sampleIsolation reads the statuses of victim and of the other members.
func (n *nemesis) sampleIsolation(ctx context.Context, victim *node, since time.Time) (isolationSample, error) {
	s := isolationSample{at: time.Since(since)}
	st, err := n.c.status(ctx, victim)
	if err != nil {
		return s, err
	}
	s.applied, s.commit = st.AppliedIndex, st.CommitIndex
	// The lowest snapshot of the others: whichever of them leads when the
	// node comes back must have compacted its log past the node's, or it
	// sends entries instead of a snapshot. An unanswered status counts as
	// no snapshot.
	first := true
	for _, m := range n.running() {
		if m == victim {
			continue
		}
		var snap uint64
		if st, err := n.c.status(ctx, m); err == nil {
			s.othersApplied = max(s.othersApplied, st.AppliedIndex)
			snap = st.SnapshotIndex
		}
		if first || snap < s.othersSnapshot {
			s.othersSnapshot, first = snap, false
		}
	}
	return s, nil
}

// isolate cuts a node off: its proxy stops forwarding, in both directions.
// The proxy sits in front of the node's peer port, so what it cuts is the
// connections the others open to the node: the streams on which the node
// sends to them and the pipelines on which they send to it. The streams the
// node opened to the others go through their proxies and keep working, so
// it still receives (see docs/ROBUSTNESS.md). With Snapshot, the isolation
// lasts until the others have compacted their logs past the node's, so that
// it can only catch up from a snapshot, and the fault checks that it
// receives one after the heal.
//
// The proxy is paused (PauseTx/Rx): it holds the bytes, as TCP does across
// a partition, and delivers them in order once healed. BlackholeTx/Rx
// instead drops whatever it reads while the connections stay up, which no
// real network does inside a TCP stream; rafthttp's msgappv2 stream is
// delta-encoded, so a follower then decodes appends whose entries do not
// follow their index, and raft panics ("index, 6, is out of range [1]",
// etcd issue 15595). ROBUSTNESS_BLACKHOLE=1 uses it anyway.
func (n *nemesis) isolate(ctx context.Context, r *faultRecord) error {
	leader, others, err := n.roles(ctx)
	if err != nil {
		return err
	}
	victim := leader
	if r.Fault.Kind == isolateFollower {
		if len(others) == 0 {
			return errors.New("no follower runs")
		}
		victim = others[r.Fault.Pick%len(others)]
	}
	r.Target = victim.name()
	snapsBefore, err := n.c.metric(ctx, victim, "raftkv_snapshots_received_total")
	if err != nil {
		return err
	}
	start := time.Now()
	px := victim.proxy
	if n.blackhole {
		px.BlackholeTx()
		px.BlackholeRx()
	} else {
		px.PauseTx()
		px.PauseRx()
	}
	first, _ := n.sampleIsolation(ctx, victim, start)
	var last isolationSample
	stalledAt := time.Duration(-1) // when the node's applied index last moved
	err = poll(ctx, isolationTimeout, func() error {
		s, err := n.sampleIsolation(ctx, victim, start)
		if err != nil {
			return err
		}
		if s.applied != last.applied {
			stalledAt = s.at
		}
		last = s
		if s.at < r.Fault.Duration {
			return errors.New("isolation continues")
		}
		if r.Fault.Snapshot && s.othersSnapshot < s.commit+catchUpEntries+snapshotMargin {
			return fmt.Errorf("the others' logs are not compacted past the isolated node's yet: %v", s)
		}
		return nil
	})
	if n.blackhole {
		px.UnblackholeTx()
		px.UnblackholeRx()
	} else {
		px.UnpauseTx()
		px.UnpauseRx()
	}
	healed := time.Now()
	r.Note = fmt.Sprintf("at isolation %v; at heal %v; the isolated node's applied index last moved at %v",
		first, last, stalledAt.Round(10*time.Millisecond))
	if err != nil {
		return fmt.Errorf("isolating %s: %w", victim.name(), err)
	}
	if !r.Fault.Snapshot {
		return nil
	}
	err = poll(ctx, readyTimeout, func() error {
		v, err := n.c.metric(ctx, victim, "raftkv_snapshots_received_total")
		if err != nil {
			return err
		}
		if v <= snapsBefore {
			return fmt.Errorf("%s received no snapshot since the heal (raftkv_snapshots_received_total %v)", victim.name(), v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.CatchUp = time.Since(healed)
	r.Note += fmt.Sprintf("; caught up from a snapshot %v after the heal", r.CatchUp.Round(time.Millisecond))
	return nil
}
