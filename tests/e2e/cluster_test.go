//go:build unix

package e2e

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startAttempts bounds how often a cluster start is retried with new ports
// when one was taken between choosing it and binding it.
const startAttempts = 3

var errPortTaken = errors.New("a port was taken before raftkv could bind it")

// member is one node of a test cluster, started with the Procfile's flags.
type member struct {
	name    string
	id      int
	peerURL string
	port    int    // client API port
	cluster string // --cluster
	dataDir string
	join    bool
	extra   []string
	starts  int
	proc    *proc
}

func (m *member) args() []string {
	args := []string{"serve", "--id", strconv.Itoa(m.id), "--cluster", m.cluster,
		"--port", strconv.Itoa(m.port), "--data-dir", m.dataDir}
	if m.join {
		args = append(args, "--join")
	}
	return append(args, m.extra...)
}

func (m *member) url(key string) string {
	return "http://127.0.0.1:" + strconv.Itoa(m.port) + "/" + key
}

// cluster is a set of raftkv processes on loopback.
type cluster struct {
	t       *testing.T
	dir     string // working directory of the processes
	members []*member
}

// startCluster starts size nodes with extra flags and waits until the
// cluster has committed a write.
func startCluster(t *testing.T, size int, extra ...string) *cluster {
	t.Helper()
	// With access control on the probe write needs credentials, which only
	// the caller has: it waits for its own write.
	return startClusterWith(t, clusterSpec{size: size, extra: extra, probe: !slices.Contains(extra, "--auth-file")})
}

// clusterSpec says how startClusterWith starts a cluster.
type clusterSpec struct {
	size  int
	extra []string // flags of every member
	// dir is the members' working directory (default: a new one); with
	// procfileDirs their data dirs are dir/raftkv-<id>, as the Procfile's,
	// else each its own new directory.
	dir          string
	procfileDirs bool
	// prepare, when set, readies each member before it starts (seeds its
	// data dir, say).
	prepare func(m *member)
	// probe waits for a write to commit once every member answers.
	probe bool
}

// startClusterWith starts the cluster spec describes and waits until every
// member answers. A start that lost a port to another process is tried
// again afresh, with new ports.
func startClusterWith(t *testing.T, spec clusterSpec) *cluster {
	t.Helper()
	for attempt := 1; ; attempt++ {
		c := &cluster{t: t, dir: cmp.Or(spec.dir, t.TempDir())}
		ports := freePorts(t, 2*spec.size)
		urls := make([]string, spec.size)
		for i := range urls {
			urls[i] = "http://127.0.0.1:" + strconv.Itoa(ports[2*i])
		}
		for i := range spec.size {
			m := &member{
				name:    "node" + strconv.Itoa(i+1),
				id:      i + 1,
				peerURL: urls[i],
				port:    ports[2*i+1],
				cluster: strings.Join(urls, ","),
				dataDir: filepath.Join(t.TempDir(), "data"),
				extra:   spec.extra,
			}
			if spec.procfileDirs {
				m.dataDir = filepath.Join(c.dir, "raftkv-"+strconv.Itoa(m.id))
			}
			if spec.prepare != nil {
				spec.prepare(m)
			}
			c.members = append(c.members, m)
		}
		for _, m := range c.members {
			c.launch(m)
		}
		var err error
		for _, m := range c.members {
			if err = c.waitUp(m); err != nil {
				break
			}
		}
		if err == nil {
			if spec.probe {
				c.waitCommit(c.members[0])
			}
			return c
		}
		for _, m := range c.members {
			m.proc.Stop(t)
			if spec.procfileDirs {
				os.RemoveAll(m.dataDir)
			}
		}
		if !errors.Is(err, errPortTaken) || attempt == startAttempts {
			t.Fatalf("start cluster: %v", err)
		}
		t.Logf("start cluster (attempt %d): %v; retrying with new ports", attempt, err)
	}
}

// launch starts m's process without waiting for it.
func (c *cluster) launch(m *member) {
	c.t.Helper()
	m.starts++
	name := m.name
	if m.starts > 1 {
		name += "-start" + strconv.Itoa(m.starts)
	}
	m.proc = startProc(c.t, name, c.dir, nil, m.args()...)
}

// waitUp waits until m answers HTTP, or reports why it exited.
func (c *cluster) waitUp(m *member) error {
	return eventually(startTimeout, func() error {
		if m.proc.Exited() {
			if strings.Contains(m.proc.Log(), "address already in use") {
				return fmt.Errorf("%s: %w", m.name, errPortTaken)
			}
			return fmt.Errorf("%s exited with code %d: %s", m.name, m.proc.ExitCode(), m.proc.LastLine())
		}
		_, err := get(m, "e2e-probe", true)
		return err
	})
}

// restart starts m again on its data dir and waits until it answers HTTP.
func (c *cluster) restart(m *member) {
	c.t.Helper()
	if !m.proc.Exited() {
		c.t.Fatalf("restart %s: still running", m.name)
	}
	c.launch(m)
	if err := c.waitUp(m); err != nil {
		c.t.Fatalf("restart %s: %v", m.name, err)
	}
}

// addMember describes a new member with fresh ports that joins the cluster;
// it is not started.
func (c *cluster) addMember() *member {
	ports := freePorts(c.t, 2)
	id := len(c.members) + 1
	urls := make([]string, 0, id)
	for _, m := range c.members {
		urls = append(urls, m.peerURL)
	}
	m := &member{
		name:    "node" + strconv.Itoa(id),
		id:      id,
		peerURL: "http://127.0.0.1:" + strconv.Itoa(ports[0]),
		port:    ports[1],
		dataDir: filepath.Join(c.t.TempDir(), "data"),
		join:    true,
	}
	m.cluster = strings.Join(append(urls, m.peerURL), ",")
	c.members = append(c.members, m)
	return m
}

// waitCommit waits until a write through m commits, which needs a leader.
func (c *cluster) waitCommit(m *member) {
	c.t.Helper()
	mustPut(c.t, m, "e2e-probe", "ok")
}

var leaderLine = regexp.MustCompile(`leader changed\s.*"leader": (\d+)`)

// leaderSeenBy returns the leader m last logged, or 0 if none.
func leaderSeenBy(m *member) int {
	matches := leaderLine.FindAllStringSubmatch(m.proc.Log(), -1)
	if len(matches) == 0 {
		return 0
	}
	id, _ := strconv.Atoi(matches[len(matches)-1][1])
	return id
}

// response is an HTTP answer, body included.
type response struct {
	status int
	body   string
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.status, strings.TrimSpace(r.body)) }

var httpClient = &http.Client{Timeout: 10 * time.Second}

func do(method, url, body string) (response, error) {
	return doAs("", method, url, body)
}

func get(m *member, key string, serializable bool) (response, error) {
	u := m.url(key)
	if serializable {
		u += "?consistency=serializable"
	}
	return do(http.MethodGet, u, "")
}

// retryable reports whether a request should be tried again: the server was
// unreachable, had no leader (503 with Retry-After), or timed out (504).
func retryable(r response, err error) bool {
	return err != nil || r.status == http.StatusServiceUnavailable || r.status == http.StatusGatewayTimeout
}

// mustDo sends a request until it gets an answer that is not retryable, and
// fails the test unless that answer has status want.
func mustDo(t *testing.T, method, url, body string, want int) {
	t.Helper()
	var r response
	err := eventually(leaderTimeout, func() error {
		var err error
		r, err = do(method, url, body)
		if retryable(r, err) {
			return fmt.Errorf("%s %s: %v %v", method, url, r, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.status != want {
		t.Fatalf("%s %s: got %v, want %d", method, url, r, want)
	}
}

// mustPut writes key=value through m, retrying while the cluster has no
// leader. Retrying a put of the same value after a 504 is harmless.
func mustPut(t *testing.T, m *member, key, value string) {
	t.Helper()
	mustDo(t, http.MethodPut, m.url(key), value, http.StatusNoContent)
}

// mustGet reads key on m, retrying only on retryable answers: anything but
// 200 with value afterwards is a failure (for a linearizable read of an
// acknowledged write, a 404 is a consistency bug, not a reason to wait).
func mustGet(t *testing.T, m *member, key, value string, serializable bool) {
	t.Helper()
	var r response
	err := eventually(leaderTimeout, func() error {
		var err error
		r, err = get(m, key, serializable)
		if retryable(r, err) {
			return fmt.Errorf("GET %s on %s: %v %v", key, m.name, r, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusOK || r.body != value {
		t.Fatalf("GET %s on %s (serializable=%v): got %v, want 200 %q", key, m.name, serializable, r, value)
	}
}

// waitValue waits until a serializable read of key on m returns value: the
// way to tell that m has caught up to a write.
func waitValue(t *testing.T, m *member, key, value string) {
	t.Helper()
	err := eventually(leaderTimeout, func() error {
		r, err := get(m, key, true)
		if err != nil || r.status != http.StatusOK || r.body != value {
			return fmt.Errorf("%s has not caught up: GET %s: %v %v", m.name, key, r, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
