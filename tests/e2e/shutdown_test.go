//go:build unix

package e2e

import (
	"net/http"
	"testing"
	"time"
)

// TestGracefulShutdown checks that SIGTERM stops a node promptly with exit
// code 0, with or without a quorum left, and that a node restarted on its data
// dir has kept every write, even when it restarts alone and can only have
// them from its own disk.
func TestGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := startCluster(t, 3, "--request-timeout", "2s")
	n1, n2, n3 := c.members[0], c.members[1], c.members[2]
	w := &writes{values: map[string]string{}}
	for range 10 {
		w.put(t, n1)
	}

	terminate := func(m *member) {
		t.Helper()
		took := m.proc.Terminate(t)
		if code := m.proc.ExitCode(); code != 0 {
			t.Fatalf("%s exited with code %d after SIGTERM, want 0; last line: %s", m.name, code, m.proc.LastLine())
		}
		t.Logf("%s exited 0 %v after SIGTERM", m.name, took.Round(time.Millisecond))
	}

	// One node, with the rest of the cluster up.
	terminate(n2)
	c.restart(n2)
	w.put(t, n2)
	w.check(t, n2, false)

	// Every node, the last two without a quorum. Node 2 must hold every
	// write before it stops, since it will restart alone.
	last := w.keys[len(w.keys)-1]
	waitValue(t, n2, last, w.values[last])
	for _, m := range []*member{n1, n3, n2} {
		terminate(m)
	}

	c.restart(n2)
	waitValue(t, n2, last, w.values[last])
	w.check(t, n2, true)
	// Alone it cannot confirm a linearizable read, and must say so rather
	// than answer from what may be stale state.
	if r, err := get(n2, last, false); err != nil || (r.status != http.StatusServiceUnavailable && r.status != http.StatusGatewayTimeout) {
		t.Errorf("linearizable GET on a node without quorum: got %v %v, want 503 or 504", r, err)
	}

	c.restart(n1)
	c.restart(n3)
	for _, m := range c.members {
		w.check(t, m, false)
	}
	w.put(t, n3)
	for _, m := range c.members {
		w.check(t, m, false)
	}
}
