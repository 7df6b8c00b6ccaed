//go:build unix

package e2e

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// writes records every acknowledged write, in order.
type writes struct {
	keys   []string
	values map[string]string
}

// put writes a new key through m and records it once acknowledged.
func (w *writes) put(t *testing.T, m *member) {
	t.Helper()
	key := fmt.Sprintf("k%04d", len(w.keys))
	value := "v-" + key + "-" + m.name
	mustPut(t, m, key, value)
	w.keys = append(w.keys, key)
	w.values[key] = value
}

// check reads every acknowledged write on m.
func (w *writes) check(t *testing.T, m *member, serializable bool) {
	t.Helper()
	for _, k := range w.keys {
		mustGet(t, m, k, w.values[k], serializable)
	}
}

// TestKillAndRestart kills the leader and then a follower with SIGKILL, keeps
// writing through the survivors, restarts the killed node from its data dir
// and checks that it serves every acknowledged write. The snapshot settings
// are small so that the restarted node replays a snapshot from its own disk
// and catches up through one sent by the leader.
func TestKillAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := startCluster(t, 3, "--snapshot-count", "20", "--snapshot-catchup-entries", "5")
	w := &writes{values: map[string]string{}}
	for range 25 {
		w.put(t, c.members[0])
	}
	for _, role := range []string{"leader", "follower"} {
		var leader int
		if err := eventually(leaderTimeout, func() error {
			if leader = leaderSeenBy(c.members[0]); leader == 0 {
				return errors.New("node 1 knows no leader")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var victim *member
		var others []*member
		for _, m := range c.members {
			if victim == nil && (m.id == leader) == (role == "leader") {
				victim = m
			} else {
				others = append(others, m)
			}
		}
		t.Logf("killing the %s, %s", role, victim.name)
		victim.proc.Kill(t)
		for i := range 30 {
			w.put(t, others[i%len(others)])
		}
		c.restart(victim)
		last := w.keys[len(w.keys)-1]
		waitValue(t, victim, last, w.values[last])
		w.check(t, victim, true)
		w.check(t, victim, false)
	}
	for _, m := range c.members {
		w.check(t, m, false)
	}
}

// TestWriteToDeadLeaderAnswersOnceNewLeaderIsIn: a write that a follower
// forwards to a leader killed a moment before is lost with it. The follower
// answers 504 with an unknown outcome as soon as a new leader has committed
// without the write, not after the request timeout, which is set far beyond
// what this test waits for.
func TestWriteToDeadLeaderAnswersOnceNewLeaderIsIn(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	// A long election timeout gives the write time to be forwarded to the
	// dead leader before the followers give up on it.
	c := startCluster(t, 3, "--request-timeout", "10m", "--heartbeat-ms", "200", "--election-ms", "3000")
	leader := leaderSeenBy(c.members[0])
	if leader == 0 {
		t.Fatal("node 1 logged no leader after a committed write")
	}
	follower := c.members[leader%3] // the member with the next id
	c.members[leader-1].proc.Kill(t)

	client := &http.Client{Timeout: 2 * time.Minute}
	req, err := http.NewRequest(http.MethodPut, follower.url("lost"), strings.NewReader("value"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(body), `"timeout_outcome_unknown"`) ||
		!strings.Contains(string(body), "leader changed") {
		t.Fatalf("a write forwarded to the dead leader got %d %s, want 504 timeout_outcome_unknown saying the leader changed",
			resp.StatusCode, body)
	}
	// The leader died before the write was sent, so it cannot resurface.
	if r, err := get(follower, "lost", false); err != nil || r.status != http.StatusNotFound {
		t.Fatalf("the lost write reads back as %v %v, want 404", r, err)
	}
	mustPut(t, follower, "after", "value")
}
