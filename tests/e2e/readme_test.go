//go:build unix

package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestREADMEWorkflow follows the README's curl session step by step: write
// and read across a three-node cluster, add a fourth node, remove the third
// (which must stop by itself and refuse to come back), restart the second.
func TestREADMEWorkflow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := startCluster(t, 3)
	n1, n2, n3 := c.members[0], c.members[1], c.members[2]

	// curl -L http://127.0.0.1:12380/my-key -XPUT -d bar
	mustPut(t, n1, "my-key", "bar")
	// curl -L http://127.0.0.1:32380/my-key (and on node 2)
	mustGet(t, n2, "my-key", "bar", false)
	mustGet(t, n3, "my-key", "bar", false)

	// curl -L http://127.0.0.1:12380/4 -XPOST -d http://127.0.0.1:42379
	n4 := c.addMember()
	mustDo(t, http.MethodPost, n1.url("4"), n4.peerURL, http.StatusNoContent)
	// raftkv serve --id 4 --cluster <four URLs> --port 42380 --join
	c.launch(n4)
	if err := c.waitUp(n4); err != nil {
		t.Fatal(err)
	}
	mustGet(t, n4, "my-key", "bar", false)
	waitValue(t, n4, "my-key", "bar")

	// curl -L http://127.0.0.1:12380/3 -XDELETE
	t.Logf("removing node 3; node 1 last saw node %d as the leader", leaderSeenBy(n1))
	mustDo(t, http.MethodDelete, n1.url("3"), "", http.StatusNoContent)
	if !n3.proc.WaitExit(exitTimeout) {
		t.Fatalf("node 3 still running %v after its removal", exitTimeout)
	}
	if code := n3.proc.ExitCode(); code != 0 {
		t.Errorf("removed node 3 exited with code %d, want 0; last line: %s", code, n3.proc.LastLine())
	}
	if log := n3.proc.Log(); !strings.Contains(log, "removed from the cluster") {
		t.Errorf("removed node 3 logged no line saying it was removed")
	}

	// Node 3 must refuse to come back on its old data dir, in one line,
	// without touching it.
	before := listDir(t, n3.dataDir)
	c.launch(n3)
	if !n3.proc.WaitExit(exitTimeout) {
		t.Errorf("node 3 restarted after its removal and is still running after %v", exitTimeout)
		n3.proc.Stop(t)
	} else {
		if code := n3.proc.ExitCode(); code == 0 {
			t.Errorf("restarting removed node 3 exited with code 0, want non-zero")
		}
		out := strings.TrimSpace(n3.proc.Log())
		if strings.Count(out, "\n") != 0 || !strings.Contains(out, "removed") {
			t.Errorf("restarting removed node 3: want one line saying it was removed, got:\n%s", out)
		}
	}
	if after := listDir(t, n3.dataDir); fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("restarting removed node 3 changed its data dir:\nbefore %v\nafter  %v", before, after)
	}

	// go tool goreman run stop raftkv2: SIGTERM, and node 2 exits 0.
	n2.proc.Terminate(t)
	if code := n2.proc.ExitCode(); code != 0 {
		t.Errorf("node 2 exited with code %d after SIGTERM, want 0; last line: %s", code, n2.proc.LastLine())
	}
	// curl -L http://127.0.0.1:12380/my-key -XPUT -d baz: nodes 1 and 4
	// are two of three and still form a quorum.
	mustPut(t, n1, "my-key", "baz")
	// go tool goreman run start raftkv2; curl -L http://127.0.0.1:22380/my-key
	c.restart(n2)
	mustGet(t, n2, "my-key", "baz", false)

	// The remaining three nodes still take writes and serve them everywhere.
	rest := []*member{n1, n2, n4}
	for i, m := range rest {
		mustPut(t, m, "after-"+strconv.Itoa(i), m.name)
	}
	for _, m := range rest {
		for i, w := range rest {
			mustGet(t, m, "after-"+strconv.Itoa(i), w.name, false)
		}
		mustGet(t, m, "my-key", "baz", false)
	}
}
