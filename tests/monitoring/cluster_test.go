//go:build unix

package monitoring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Deadlines. They are generous because the tests run race-instrumented
// servers on shared cores; every wait ends as soon as its condition holds.
const (
	buildTimeout   = 3 * time.Minute
	startTimeout   = 30 * time.Second // every member answers /readyz
	requestTimeout = 5 * time.Second
	stopTimeout    = 10 * time.Second // SIGTERM to exit, before SIGKILL
	pollInterval   = 50 * time.Millisecond
	startAttempts  = 3 // a port taken between FreePorts and the bind costs one
)

// errPortTaken is a start that lost a port to another process.
var errPortTaken = errors.New("port taken")

// buildRaftkv builds the raftkv binary from the repository's root, with
// raftkv's own go.mod (not this module's, whose Prometheus dependency raises
// versions), and with -race when the tests run with it.
func buildRaftkv(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.HasPrefix(mod, []byte("module github.com/raftkv/raftkv\n")) {
		t.Fatalf("%s is not raftkv's module root: %v", root, err)
	}
	bin := filepath.Join(t.TempDir(), "raftkv")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	ctx, cancel := context.WithTimeout(t.Context(), buildTimeout)
	defer cancel()
	// go test puts its own GOROOT/bin first in PATH: the toolchain that
	// builds the tests builds the server.
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/raftkv")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build raftkv: %v\n%s", err, out)
	}
	return bin
}

// member is one raftkv process of a cluster.
type member struct {
	id      int
	port    int    // client API
	logPath string // its stdout and stderr
	cmd     *exec.Cmd
	done    chan struct{} // closed once it has exited
}

func (m *member) url(path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(m.port) + path
}

func (m *member) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

func (m *member) log() string {
	b, err := os.ReadFile(m.logPath)
	if err != nil {
		return "(reading log: " + err.Error() + ")"
	}
	return string(b)
}

// stop ends the process with SIGTERM, then SIGKILL after stopTimeout, and
// waits for it; it reports whether SIGTERM was enough.
func (m *member) stop() bool {
	if m.exited() {
		return true
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-m.done:
		return true
	case <-timer.C:
		_ = m.cmd.Process.Kill()
		<-m.done
		return false
	}
}

// startCluster starts size raftkv processes of bin on loopback ports and
// waits until every member is ready (knows a leader and has applied what it
// knows committed). Every process is stopped when the test ends; its output
// is logged if the test failed, and a data race it reports fails the test.
func startCluster(t *testing.T, bin string, size int) []*member {
	t.Helper()
	for attempt := 1; ; attempt++ {
		members, err := tryStartCluster(t, bin, size)
		if err == nil {
			return members
		}
		for _, m := range members {
			m.stop()
		}
		if !errors.Is(err, errPortTaken) || attempt == startAttempts {
			t.Fatalf("start cluster: %v", err)
		}
		t.Logf("start cluster (attempt %d): %v; again with new ports", attempt, err)
	}
}

func tryStartCluster(t *testing.T, bin string, size int) ([]*member, error) {
	ports, err := freePorts(2 * size)
	if err != nil {
		return nil, err
	}
	peers := make([]string, size)
	for i := range peers {
		peers[i] = "http://127.0.0.1:" + strconv.Itoa(ports[2*i])
	}
	var members []*member
	for i := range size {
		m := &member{id: i + 1, port: ports[2*i+1]}
		args := []string{"serve", "--id", strconv.Itoa(m.id), "--cluster", strings.Join(peers, ","),
			"--port", strconv.Itoa(m.port), "--data-dir", filepath.Join(t.TempDir(), "data")}
		if err := m.start(t, bin, args); err != nil {
			return members, err
		}
		members = append(members, m)
	}
	for _, m := range members {
		err := eventually(t.Context(), startTimeout, func() error {
			if m.exited() {
				if strings.Contains(m.log(), "address already in use") {
					return fmt.Errorf("member %d: %w", m.id, errPortTaken)
				}
				return fmt.Errorf("member %d exited with code %d", m.id, m.cmd.ProcessState.ExitCode())
			}
			_, err := request(t.Context(), http.MethodGet, m.url("/readyz"), "", http.StatusOK)
			return err
		})
		if err != nil {
			return members, err
		}
	}
	return members, nil
}

// start starts m's process without waiting for it to serve.
func (m *member) start(t *testing.T, bin string, args []string) error {
	log, err := os.CreateTemp(t.TempDir(), fmt.Sprintf("member%d-*.log", m.id))
	if err != nil {
		return err
	}
	m.logPath = log.Name()
	m.cmd = exec.Command(bin, args...)
	m.cmd.Env = cleanEnv()
	m.cmd.Stdout, m.cmd.Stderr = log, log
	if err := m.cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start member %d: %w", m.id, err)
	}
	m.done = make(chan struct{})
	go func() {
		_ = m.cmd.Wait() // the exit status is read from ProcessState
		log.Close()
		close(m.done)
	}()
	t.Cleanup(func() {
		m.stop()
		out := m.log()
		if strings.Contains(out, "WARNING: DATA RACE") {
			t.Errorf("member %d reported a data race", m.id)
		}
		if t.Failed() {
			t.Logf("--- member %d (%s) output:\n%s", m.id, strings.Join(args, " "), out)
		}
	})
	return nil
}

// cleanEnv is the test's environment without RAFTKV_ settings, so that a
// developer's shell cannot change what the tests start, and with a short
// pause at exit for a race-enabled binary (a second by default).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RAFTKV_") {
			env = append(env, kv)
		}
	}
	if _, ok := os.LookupEnv("GORACE"); !ok {
		env = append(env, "GORACE=atexit_sleep_ms=100")
	}
	return env
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// eventually calls cond every pollInterval until it returns nil, and
// returns its last error if that takes longer than timeout.
func eventually(ctx context.Context, timeout time.Duration, cond func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not within %v: %w", timeout, err)
		case <-tick.C:
		}
	}
}

// client makes one connection per request, so that no idle connection (and
// its goroutines) outlives a test.
var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// request sends a request and returns the response's body, or an error if
// the status is not want.
func request(ctx context.Context, method, url, body string, want int) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		return nil, fmt.Errorf("%s %s: read body: %w", method, url, err)
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: status %d, want %d: %s", method, url, resp.StatusCode, want, b.Bytes())
	}
	return b.Bytes(), nil
}
