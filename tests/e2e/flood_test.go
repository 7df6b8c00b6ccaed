//go:build linux

package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/internal/flood"
	"github.com/raftkv/raftkv/internal/proctest"
)

// TestFlood: a node under an open file limit of 1024 meets far more idle,
// silent, slow and non-reading clients than it has descriptors for, while
// writers write. It keeps serving writes and stays up, the excess gets 503
// busy (or 413 / 408 for bodies it will not wait for), and its memory stays
// bounded. The assertions are on outcomes and resources, never on timing.
func TestFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("floods a node")
	}
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("needs prlimit (util-linux) to lower the node's open file limit")
	}
	const (
		nofile     = 1024
		maxWatch   = 100
		maxReqs    = 64
		bodyBytes  = 1<<20 + 1<<19 // the default --max-request-bytes
		valueBytes = 16 << 10
	)
	ports := freePorts(t, 2)
	peer := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	args := []string{"--nofile=" + strconv.Itoa(nofile) + ":" + strconv.Itoa(nofile), server.Path(t),
		"serve", "--id", "1", "--cluster", peer, "--port", strconv.Itoa(ports[1]),
		"--data-dir", filepath.Join(t.TempDir(), "data"), "--snapshot-count", "200",
		"--max-watchers", strconv.Itoa(maxWatch), "--max-concurrent-requests", strconv.Itoa(maxReqs),
		"--body-timeout", "2s", "--write-timeout", "1s", "--log-level", "warn"}
	p := startProcBin(t, prlimit, "node1", t.TempDir(), nil, args...)
	m := &member{name: "node1", port: ports[1]}
	if err := eventually(startTimeout, func() error { _, err := get(m, "probe", true); return err }); err != nil {
		t.Fatalf("node did not come up: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := flood.Run(ctx, flood.Config{
		// Its ephemeral ports on another loopback address: tests in other
		// packages rebind ports of 127.0.0.1 while this one runs.
		SourceIP: "127.0.0.2",
		URL:      "http://127.0.0.1:" + strconv.Itoa(ports[1]), Pid: p.Pid(),
		Idle: 700, Silent: 700, SlowBodies: 2 * maxReqs, BodyBytes: bodyBytes, HugeLengths: 20,
		Watchers: 2 * maxWatch, Writers: 4, ValueBytes: valueBytes,
		Duration: 5 * time.Second, Settle: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("flood:\n%s", rep)
	if p.Exited() {
		t.Fatalf("the node exited (code %d): %s", p.ExitCode(), p.LastLine())
	}
	if rep.OK() == 0 {
		t.Fatalf("no write succeeded: %v", rep.Writes)
	}
	// A 503 is a write refused before it was applied (busy, or on a
	// starved machine even no_leader); nothing else may come back.
	for what := range rep.Writes {
		if what != "200" && !strings.HasPrefix(what, "503 ") {
			t.Errorf("a writer got %q (%d×); want 200 or a 503", what, rep.Writes[what])
		}
	}
	// Every hostile client gets an answer that refuses it, or is closed
	// (at the connection cap, a connection whose request was not read yet
	// may be closed to make room), or is still held within its cap.
	allowed := map[string][]string{
		"idle":        {"closed", "open"},
		"silent":      {"closed", "open"},
		"slow-body":   {"closed", "503 busy", "408 body_timeout"},
		"huge-length": {"closed", "413 request_too_large"},
		"watcher":     {"closed", "503 busy", "streaming until the end"},
	}
	for kind, outcomes := range rep.Hostile {
		for what, n := range outcomes {
			if !slices.Contains(allowed[kind], what) {
				t.Errorf("%d %s clients got %q", n, kind, what)
			}
		}
	}
	if n := rep.Hostile["watcher"]["streaming until the end"]; n > maxWatch {
		t.Errorf("%d watches streaming; --max-watchers is %d", n, maxWatch)
	}
	// Which excess slow bodies are refused busy and which are closed at
	// the connection cap, and how many get a slot as earlier ones time
	// out, depends on timing; httpapi's TestBusyBeyondMaxConcurrentRequests
	// checks the busy answer, and the RSS bound below the bodies held.
	// Bodies held at once are bounded by the request cap: 64 × 1.5 MiB,
	// plus the node's own; the race detector multiplies memory.
	rssBound := int64(512 << 10)
	if proctest.RaceEnabled {
		rssBound *= 4
	}
	if rep.PeakRSSKiB > rssBound {
		t.Errorf("peak RSS %d MiB, bound %d MiB", rep.PeakRSSKiB>>10, rssBound>>10)
	}
	if rep.PeakFDs > nofile {
		t.Errorf("peak open files %d over the limit %d", rep.PeakFDs, nofile)
	}
	// Still correct and serving after the flood.
	mustDo(t, "PUT", m.url("after-flood"), "ok", 204)
	mustGet(t, m, "after-flood", "ok", false)
}
