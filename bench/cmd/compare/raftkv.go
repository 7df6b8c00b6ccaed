package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/raftkv/raftkv/client"
)

// raftkvMaxConcurrentRequests lifts the server's limit on requests in
// progress above the largest client count of the matrix, so that a cell
// measures the server's speed rather than its 503s.
const raftkvMaxConcurrentRequests = 1024

// startRaftkv starts a fresh three-node raftkv cluster from the binary bin
// and waits until every node is ready. On error nothing is left running.
func startRaftkv(ctx context.Context, bin string) (_ *cluster, err error) {
	bin, err = filepath.Abs(bin)
	if err != nil {
		return nil, fmt.Errorf("raftkv binary: %w", err)
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("raftkv binary (make build makes it): %w", err)
	}
	dir, err := os.MkdirTemp("", "bench-compare-raftkv-")
	if err != nil {
		return nil, fmt.Errorf("raftkv: data dir: %w", err)
	}
	c := &cluster{system: "raftkv", dir: dir}
	defer func() {
		if err != nil {
			err = joinStop(err, c)
		}
	}()

	ports, err := freePorts(2 * nodes)
	if err != nil {
		return nil, fmt.Errorf("raftkv: %w", err)
	}
	peers := make([]string, nodes)
	for i := range nodes {
		peers[i] = fmt.Sprintf("http://127.0.0.1:%d", ports[i])
	}
	env := raftkvEnv()
	for i := range nodes {
		id := strconv.Itoa(i + 1)
		argv := []string{bin, "serve",
			"--id", id,
			"--cluster", strings.Join(peers, ","),
			"--port", strconv.Itoa(ports[nodes+i]),
			"--data-dir", filepath.Join(dir, "node"+id),
			"--log-level", "error",
			"--max-concurrent-requests", strconv.Itoa(raftkvMaxConcurrentRequests),
		}
		p, err := startProc("raftkv node "+id, argv, env, filepath.Join(dir, "node"+id+".log"))
		if err != nil {
			return nil, fmt.Errorf("raftkv: %w", err)
		}
		c.procs = append(c.procs, p)
	}

	probe := &http.Client{}
	defer probe.CloseIdleConnections()
	for i := range nodes {
		url := fmt.Sprintf("http://127.0.0.1:%d", ports[nodes+i])
		err := waitUntil(ctx, "raftkv node "+strconv.Itoa(i+1)+" /readyz", c.procs, func(ctx context.Context) error {
			return readyz(ctx, probe, url)
		})
		if err != nil {
			return nil, err
		}
		cl, err := client.New([]string{url}, client.WithMaxAttempts(1))
		if err != nil {
			return nil, fmt.Errorf("raftkv: client of %s: %w", url, err)
		}
		c.stores = append(c.stores, raftkvStore{cl})
	}
	return c, nil
}

// raftkvEnv is the harness's environment without RAFTKV_ variables: serve
// reads every flag from one, and a setting left in the caller's shell would
// silently change the server under test.
func raftkvEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RAFTKV_") {
			env = append(env, kv)
		}
	}
	return env
}

// readyz succeeds when the node's GET /readyz answers 200.
func readyz(ctx context.Context, hc *http.Client, baseURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/readyz", nil)
	if err != nil {
		return fmt.Errorf("readyz request: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("readyz: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz: %s", resp.Status)
	}
	return nil
}

// raftkvStore sends the workloads' requests through raftkv's Go client, so
// that the harness measures what an application using that client gets.
type raftkvStore struct{ c *client.Client }

func (s raftkvStore) put(ctx context.Context, key string, value []byte) error {
	_, err := s.c.Put(ctx, []byte(key), value, client.Condition{})
	return err
}

func (s raftkvStore) get(ctx context.Context, key string, serializable bool) error {
	consistency := client.Linearizable
	if serializable {
		consistency = client.Serializable
	}
	_, err := s.c.Get(ctx, []byte(key), consistency)
	return err
}

// countKeys reads the "keys" of the node's GET /v1/status: every key of its
// store.
func (s raftkvStore) countKeys(ctx context.Context) (int64, error) {
	st, err := s.c.Status(ctx)
	if err != nil {
		return 0, err
	}
	return int64(st.Keys), nil
}

func (s raftkvStore) close() error { return s.c.Close() }

// joinStop stops a cluster whose start failed and adds any trouble stopping
// it to the start's error.
func joinStop(err error, c *cluster) error {
	if stopErr := c.stop(); stopErr != nil {
		return fmt.Errorf("%w (and stopping it: %v)", err, stopErr)
	}
	return err
}
