//go:build unix

package robustness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/pkg/v3/proxy"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/internal/proctest"
)

// Settings of every node. Snapshots are small and frequent so that every
// history crosses several of them, and a node cut off for a few seconds has
// to catch up from one.
const (
	clusterSize    = 3
	snapshotCount  = 100
	catchUpEntries = 20
	requestTimeout = time.Second
)

// Deadlines. They are generous because the short pass runs race-instrumented
// servers on two cores next to other test packages; every wait returns as
// soon as its condition holds.
const (
	liveTimeout    = 30 * time.Second // a process answers /livez
	readyTimeout   = 30 * time.Second // a cluster elects a leader and applies
	stopTimeout    = 10 * time.Second // SIGTERM to exit
	removedTimeout = 20 * time.Second // a removed member stops by itself
	pollInterval   = 50 * time.Millisecond
	startAttempts  = 3 // cluster starts retried with new ports
)

var errPortTaken = errors.New("a port was taken before it could be bound")

// node is one member of a test cluster. The others reach its peer port
// through proxy, which listens on the URL that --cluster and the member table
// name, and forwards to the port the node really listens on (--listen-peer).
type node struct {
	slot       int // position in the cluster, kept by a replacement
	id         uint64
	peerURL    string // the proxy's URL
	peerAddr   string // where the node's peer listener binds
	clientPort int
	dataDir    string
	join       bool
	clusterArg string // --cluster
	logPath    string
	proxy      proxy.Server
	proxyDone  chan struct{} // closed when the proxy's error drain ends
	proc       *proc
	starts     int
}

func (n *node) name() string { return "n" + strconv.FormatUint(n.id, 10) }

func (n *node) clientURL() string { return "http://127.0.0.1:" + strconv.Itoa(n.clientPort) }

// running reports whether n's process is up (paused or not).
func (n *node) running() bool { return n.proc != nil && !n.proc.Exited() }

// cluster is a set of raftkv processes with their proxies. Its member list
// may change (replace); the workload reads it concurrently through
// clientURL.
type cluster struct {
	bin      string
	dir      string
	logf     func(format string, args ...any)
	hc       *http.Client // harness requests: status, metrics, operations
	proxyLg  *zap.Logger
	proxyLog *os.File

	mu       sync.Mutex
	slots    []*node           // the current member of each slot
	retired  []*node           // removed members, for their logs
	peerURLs map[uint64]string // every id ever used → its peer URL
	problems []string          // unexpected exits and other server failures
}

// newCluster prepares a cluster in dir; start starts it.
func newCluster(bin, dir string, logf func(string, ...any)) (*cluster, error) {
	f, err := os.Create(filepath.Join(dir, "proxies.log"))
	if err != nil {
		return nil, err
	}
	enc := zapcore.NewConsoleEncoder(zap.NewProductionEncoderConfig())
	lg := zap.New(zapcore.NewCore(enc, zapcore.AddSync(f), zap.InfoLevel))
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: time.Second}).DialContext
	return &cluster{
		bin: bin, dir: dir, logf: logf, proxyLg: lg, proxyLog: f,
		hc:       &http.Client{Transport: tr, Timeout: 5 * time.Second},
		peerURLs: map[uint64]string{},
	}, nil
}

// startTestCluster starts a cluster for a test that drives it itself instead
// of through runHistory, and stops it when the test ends. The logf it returns
// stamps each line with the time since the start, as a history's log does.
func startTestCluster(ctx context.Context, t *testing.T) (*cluster, func(format string, args ...any)) {
	t.Helper()
	start := time.Now()
	logf := func(format string, args ...any) {
		t.Logf("%6.2fs %s", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	c, err := newCluster(serverBinary.Path(t), t.TempDir(), logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.stop()
		c.close()
	})
	if err := c.start(ctx); err != nil {
		t.Fatal(err)
	}
	return c, logf
}

// start starts clusterSize nodes and waits until every one is ready. A port
// taken between choosing and binding it makes it try again with new ones.
func (c *cluster) start(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		err := c.tryStart(ctx, attempt)
		if err == nil {
			return c.waitReady(ctx, c.members()...)
		}
		c.stop()
		if !errors.Is(err, errPortTaken) || attempt == startAttempts {
			return fmt.Errorf("start cluster: %w", err)
		}
		c.logf("start cluster (attempt %d): %v; retrying with new ports", attempt, err)
	}
}

func (c *cluster) tryStart(ctx context.Context, attempt int) error {
	ports, err := proctest.FreePorts(3 * clusterSize)
	if err != nil {
		return err
	}
	urls := make([]string, clusterSize)
	for i := range urls {
		urls[i] = "http://127.0.0.1:" + strconv.Itoa(ports[3*i])
	}
	c.mu.Lock()
	c.slots, c.retired = nil, nil
	for i := range clusterSize {
		id := uint64(i + 1)
		n := &node{
			slot: i, id: id, peerURL: urls[i],
			peerAddr:   "127.0.0.1:" + strconv.Itoa(ports[3*i+1]),
			clientPort: ports[3*i+2],
			dataDir:    filepath.Join(c.dir, fmt.Sprintf("data-n%d-a%d", id, attempt)),
			clusterArg: strings.Join(urls, ","),
			logPath:    filepath.Join(c.dir, fmt.Sprintf("n%d.log", id)),
		}
		c.slots = append(c.slots, n)
		c.peerURLs[id] = urls[i]
	}
	c.mu.Unlock()
	for _, n := range c.members() {
		if err := c.launch(n); err != nil {
			return err
		}
	}
	for _, n := range c.members() {
		if err := c.waitLive(ctx, n); err != nil {
			return err
		}
	}
	for _, n := range c.members() {
		if err := c.startProxy(n); err != nil {
			return err
		}
	}
	return nil
}

// members returns the current members, by slot.
func (c *cluster) members() []*node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.slots)
}

// clientURL returns the client URL of the member in slot.
func (c *cluster) clientURL(slot int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slots[slot].clientURL()
}

func (c *cluster) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.problems = append(c.problems, msg)
	c.mu.Unlock()
	c.logf("PROBLEM: %s", msg)
}

// takeProblems returns the problems recorded so far.
func (c *cluster) takeProblems() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.problems)
}

func (c *cluster) args(n *node) []string {
	args := []string{"serve",
		"--id", strconv.FormatUint(n.id, 10),
		"--cluster", n.clusterArg,
		"--listen-peer", n.peerAddr,
		"--port", strconv.Itoa(n.clientPort),
		"--data-dir", n.dataDir,
		"--snapshot-count", strconv.Itoa(snapshotCount),
		"--snapshot-catchup-entries", strconv.Itoa(catchUpEntries),
		"--request-timeout", requestTimeout.String(),
	}
	if n.join {
		args = append(args, "--join")
	}
	return args
}

// launch starts n's process without waiting for it.
func (c *cluster) launch(n *node) error {
	n.starts++
	name, logPath := n.name(), n.logPath
	p, err := startProc(c.bin, name, logPath, c.args(n), func(code int) {
		if portTaken(logPath) {
			return // a port taken under the harness: waitLive tries other ones
		}
		c.problem("%s exited unexpectedly with code %d: %s", name, code, lastLine(logPath))
	})
	if err != nil {
		return err
	}
	n.proc = p
	return nil
}

// waitLive waits until n answers /livez, or reports why it exited.
func (c *cluster) waitLive(ctx context.Context, n *node) error {
	return poll(ctx, liveTimeout, func() error {
		if n.proc.Exited() {
			if portTaken(n.logPath) {
				return fmt.Errorf("%s: %w", n.name(), errPortTaken)
			}
			return permanent(fmt.Errorf("%s exited with code %d: %s", n.name(), n.proc.ExitCode(), lastLine(n.logPath)))
		}
		resp, err := c.hc.Get(n.clientURL() + "/livez")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s /livez: %s", n.name(), resp.Status)
		}
		return nil
	})
}

// startProxy puts a proxy in front of n's peer port, on n's peer URL.
func (c *cluster) startProxy(n *node) error {
	from, err := url.Parse(n.peerURL)
	if err != nil {
		return err
	}
	px := proxy.NewServer(proxy.ServerConfig{
		Logger: c.proxyLg.With(zap.String("node", n.name())),
		From:   *from,
		To:     url.URL{Scheme: "http", Host: n.peerAddr},
	})
	select {
	case <-px.Ready():
	case <-px.Done():
		var err error
		select {
		case err = <-px.Error():
		default:
		}
		if err != nil && strings.Contains(err.Error(), "address already in use") {
			return fmt.Errorf("proxy for %s on %s: %w: %v", n.name(), n.peerURL, errPortTaken, err)
		}
		return fmt.Errorf("proxy for %s on %s: %v", n.name(), n.peerURL, err)
	}
	// The proxy reports broken connections on a buffered channel and stops
	// forwarding once it is full: drain it for as long as the proxy lives.
	done := make(chan struct{})
	lg := c.proxyLg.With(zap.String("node", n.name()))
	go func() {
		defer close(done)
		for {
			select {
			case err := <-px.Error():
				lg.Info("proxy error", zap.Error(err))
			case <-px.Done():
				return
			}
		}
	}()
	n.proxy, n.proxyDone = px, done
	return nil
}

// closeProxy closes n's proxy. Call it once n's process has exited: the
// proxy waits for its connections to end, and those to a dead process do.
func (c *cluster) closeProxy(n *node) {
	if n.proxy == nil {
		return
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_ = n.proxy.Close()
	}()
	select {
	case <-closed:
	case <-time.After(stopTimeout):
		c.problem("proxy of %s did not close within %v", n.name(), stopTimeout)
	}
	<-n.proxyDone
	n.proxy, n.proxyDone = nil, nil
}

// kill kills n with SIGKILL and closes its proxy, so that its peers find its
// port closed, as they would a dead host's.
func (c *cluster) kill(n *node) {
	n.proc.Kill()
	c.closeProxy(n)
}

// restart starts n again on its data dir and waits until it serves. If one
// of its own ports was taken meanwhile it moves to new ones (its peer URL,
// the proxy's, never changes).
func (c *cluster) restart(ctx context.Context, n *node) error {
	if err := c.relaunch(ctx, n); err != nil {
		return err
	}
	return c.startProxy(n)
}

func (c *cluster) relaunch(ctx context.Context, n *node) error {
	for attempt := 1; ; attempt++ {
		if err := c.launch(n); err != nil {
			return err
		}
		err := c.waitLive(ctx, n)
		if err == nil {
			return nil
		}
		n.proc.Kill()
		if !errors.Is(err, errPortTaken) || attempt == startAttempts {
			return fmt.Errorf("restart %s: %w", n.name(), err)
		}
		ports, perr := proctest.FreePorts(2)
		if perr != nil {
			return perr
		}
		c.mu.Lock()
		n.peerAddr, n.clientPort = "127.0.0.1:"+strconv.Itoa(ports[0]), ports[1]
		c.mu.Unlock()
	}
}

// stop ends every process (SIGTERM, all at once) and closes the proxies. A
// process that needs SIGKILL is a problem, as is a data race or a panic in
// any log. It takes about an election timeout: the leader tries to hand
// leadership over before it stops, to a peer that is stopping too.
func (c *cluster) stop() {
	c.mu.Lock()
	all := append(slices.Clone(c.slots), c.retired...)
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range all {
		if n.proc == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !n.proc.Stop(stopTimeout) {
				c.problem("%s did not exit within %v of SIGTERM", n.name(), stopTimeout)
			}
		}()
	}
	wg.Wait()
	for _, n := range all {
		c.closeProxy(n)
	}
	c.hc.CloseIdleConnections()
	seen := map[string]bool{}
	for _, n := range all {
		if seen[n.logPath] {
			continue
		}
		seen[n.logPath] = true
		b, _ := os.ReadFile(n.logPath)
		log := string(b)
		if proctest.ReportsDataRace(log) {
			c.problem("%s reported a data race (see %s)", n.name(), filepath.Base(n.logPath))
		}
		if strings.Contains(log, "\npanic: ") {
			c.problem("%s panicked (see %s)", n.name(), filepath.Base(n.logPath))
		}
		// Raft logs its broken invariants this way and carries on.
		if k := strings.Count(log, "should never happen"); k > 0 {
			c.problem("%s: raft logged %d times that something that should never happen did, first: %s", n.name(), k, firstLineWith(log, "should never happen"))
		}
	}
}

// close releases what stop leaves: the proxies' log.
func (c *cluster) close() {
	_ = c.proxyLg.Sync()
	c.proxyLog.Close()
}

// logPaths returns every log the cluster wrote.
func (c *cluster) logPaths() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var paths []string
	for _, n := range append(slices.Clone(c.slots), c.retired...) {
		if !slices.Contains(paths, n.logPath) {
			paths = append(paths, n.logPath)
		}
	}
	return append(paths, c.proxyLog.Name())
}

// api returns a client of the one endpoint u that sends every request once.
func (c *cluster) api(u string) *client.Client {
	cl, err := client.New([]string{u}, client.WithHTTPClient(c.hc), client.WithMaxAttempts(1))
	if err != nil {
		panic(err) // the harness made u
	}
	return cl
}

// status asks n for its /v1/status.
func (c *cluster) status(ctx context.Context, n *node) (client.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return c.api(n.clientURL()).StatusOf(ctx, n.clientURL())
}

// leader returns the member that says it leads, in the highest term.
func (c *cluster) leader(ctx context.Context) (*node, error) {
	var leader *node
	err := poll(ctx, readyTimeout, func() error {
		var term uint64
		leader = nil
		for _, n := range c.members() {
			if !n.running() || n.proc.paused.Load() {
				continue
			}
			st, err := c.status(ctx, n)
			if err == nil && st.RaftState == "leader" && st.Term >= term {
				leader, term = n, st.Term
			}
		}
		if leader == nil {
			return errors.New("no member says it leads")
		}
		return nil
	})
	return leader, err
}

// metric reads a counter or gauge without labels from n's /metrics.
func (c *cluster) metric(ctx context.Context, n *node, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.clientURL()+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no metric %s", n.name(), name)
}

// waitReady waits until each of nodes answers /readyz: it knows a leader and
// has applied what it knows committed.
func (c *cluster) waitReady(ctx context.Context, nodes ...*node) error {
	for _, n := range nodes {
		err := poll(ctx, readyTimeout, func() error {
			h, err := c.api(n.clientURL()).ReadyOf(ctx, n.clientURL())
			switch {
			case err != nil:
				return err
			case !h.OK:
				return fmt.Errorf("%s not ready: %s", n.name(), h.Reason)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// permanentError stops poll at once.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func permanent(err error) error { return permanentError{err} }

// poll calls cond until it returns nil, a permanent error, d passes or ctx
// ends, and returns cond's last error then.
func poll(ctx context.Context, d time.Duration, cond func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := cond()
		var perm permanentError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &perm):
			return perm.error
		case time.Now().After(deadline):
			return err
		}
		select {
		case <-time.After(pollInterval):
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		}
	}
}

// tail returns at most the last n bytes of the file at path.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(st.Size()-n, 0)
	}
	b := make([]byte, n)
	k, _ := f.Read(b)
	return string(b[:k])
}

// portTaken reports whether the latest start logged in the file at path
// failed to bind a port.
func portTaken(path string) bool {
	out := tail(path, 4096)
	if i := strings.LastIndex(out, "\n=== "); i >= 0 {
		out = out[i:] // the output of the latest start only
	}
	return strings.Contains(out, "address already in use")
}

// firstLineWith returns the first line of text that contains sub.
func firstLineWith(text, sub string) string {
	i := strings.Index(text, sub)
	if i < 0 {
		return ""
	}
	start := strings.LastIndexByte(text[:i], '\n') + 1
	end := strings.IndexByte(text[i:], '\n')
	if end < 0 {
		return text[start:]
	}
	return text[start : i+end]
}

// lastLine returns the last non-empty line of the file at path.
func lastLine(path string) string { return proctest.LastLine(tail(path, 4096)) }
