//go:build unix

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// revisioned records acknowledged writes with the revision each made.
type revisioned struct {
	keys []string
	val  map[string]string
	rev  map[string]uint64
}

// put writes key=value through m with PUT /v1/kv/, retrying while there is
// no leader, and records the revision it answers.
func (w *revisioned) put(t *testing.T, m *member, key, value string) {
	t.Helper()
	var r response
	err := eventually(leaderTimeout, func() error {
		var err error
		r, err = do(http.MethodPut, m.url("v1/kv/"+key), value)
		if retryable(r, err) {
			return fmt.Errorf("PUT %s on %s: %v %v", key, m.name, r, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Revision uint64 `json:"revision"`
	}
	if r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &body) != nil || body.Revision == 0 {
		t.Fatalf("PUT %s on %s: got %v, want 200 with the revision", key, m.name, r)
	}
	w.keys = append(w.keys, key)
	w.val[key], w.rev[key] = value, body.Revision
}

// last is the newest write's key.
func (w *revisioned) last() string { return w.keys[len(w.keys)-1] }

// check reads every recorded write on m with GET /v1/kv/, and fails unless
// each has its value and the revision it was written at.
func (w *revisioned) check(t *testing.T, m *member, serializable bool) {
	t.Helper()
	query := ""
	if serializable {
		query = "?consistency=serializable"
	}
	for _, key := range w.keys {
		var status int
		var body, modRev string
		err := eventually(leaderTimeout, func() error {
			resp, err := httpClient.Get(m.url("v1/kv/" + key + query))
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			status, body, modRev = resp.StatusCode, string(b), resp.Header.Get("X-Raftkv-Mod-Revision")
			if status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout {
				return fmt.Errorf("GET %s on %s: %d %s", key, m.name, status, body)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusOK || body != w.val[key] || modRev != strconv.FormatUint(w.rev[key], 10) {
			t.Fatalf("GET %s on %s (serializable=%v): %d %q at mod revision %s, want 200 %q at %d",
				key, m.name, serializable, status, body, modRev, w.val[key], w.rev[key])
		}
	}
}

// waitReady polls m's /readyz until it answers 200, and returns how long
// that took from start.
func waitReady(t *testing.T, m *member, start time.Time) time.Duration {
	t.Helper()
	err := eventually(leaderTimeout, func() error {
		if m.proc.Exited() {
			t.Fatalf("%s exited with code %d: %s", m.name, m.proc.ExitCode(), m.proc.LastLine())
		}
		r, err := do(http.MethodGet, m.url("readyz"), "")
		if err != nil || r.status != http.StatusOK {
			return fmt.Errorf("%s /readyz: %v %v", m.name, r, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// growBack adds a learner through the CLI, starts it with --join on a fresh
// data dir, and promotes it once it has caught up.
func growBack(t *testing.T, c *cluster, cli cliRunner) *member {
	t.Helper()
	m := c.addMember()
	id := strconv.Itoa(m.id)
	if out := cli.ok(t, "member", "add", m.peerURL, "--id", id, "--learner"); out != id+"\n" {
		t.Fatalf("member add --learner printed %q, want %s", out, id)
	}
	c.launch(m)
	if err := c.waitUp(m); err != nil {
		t.Fatal(err)
	}
	err := eventually(leaderTimeout, func() error {
		r := cli.run(t, "member", "promote", id)
		switch {
		case r.code == 0 && r.stdout == id+"\n":
			return nil
		case r.code == 4 && strings.Contains(r.stderr, "learner_not_ready"):
			return fmt.Errorf("member promote %s: %s", id, r.stderr)
		}
		t.Fatalf("member promote %s: exit %d, stdout %q, stderr %q", id, r.code, r.stdout, r.stderr)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestForceNewClusterAfterLosingQuorum is the drill of docs/BACKUP.md on
// real processes and disks: three nodes take writes; once the survivor has
// applied them the other two are killed with SIGKILL and their data dirs
// wiped; the survivor, restarted with --force-new-cluster, serves alone with
// every write at its revision, takes new writes, and grows back to three
// (learner, then promote), each of which serves everything. The snapshot
// settings are small so that the survivor restarts from a snapshot whose
// configuration still lists the lost members, and the new members catch up
// from a snapshot of the new cluster.
func TestForceNewClusterAfterLosingQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	snap := []string{"--snapshot-count", "20", "--snapshot-catchup-entries", "5"}
	c := startCluster(t, 3, snap...)
	survivor, lost := c.members[0], c.members[1:]
	w := &revisioned{val: map[string]string{}, rev: map[string]uint64{}}
	for i := range 40 {
		w.put(t, c.members[i%3], fmt.Sprintf("k%03d", i), fmt.Sprintf("v%03d", i))
	}
	// Writes apply in log order: the newest one read locally means the
	// survivor applied them all.
	waitValue(t, survivor, w.last(), w.val[w.last()])

	// A copy of a lost member's data, to check that it cannot come back.
	stale := t.TempDir()
	for i, m := range lost {
		m.proc.Kill(t)
		if i == 0 {
			if err := os.CopyFS(stale, os.DirFS(m.dataDir)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.RemoveAll(m.dataDir); err != nil {
			t.Fatal(err)
		}
	}
	survivor.proc.Terminate(t)

	survivor.extra = append(slices.Clone(snap), "--force-new-cluster")
	start := time.Now()
	c.launch(survivor)
	took := waitReady(t, survivor, start)
	t.Logf("the survivor was ready %v after its start with --force-new-cluster", took)
	log := survivor.proc.Log()
	for _, want := range []string{"--force-new-cluster: this member removes every other member", "removed every other member"} {
		if !strings.Contains(log, want) {
			t.Errorf("the survivor's log lacks %q", want)
		}
	}

	cli := cliRunner{dir: t.TempDir(), env: []string{"RAFTKV_ENDPOINTS=" + clientURLs(survivor)}}
	cli.waitMembers(t, survivor)
	w.check(t, survivor, false)
	before := w.rev[w.last()]
	w.put(t, survivor, "after-force", "alone")
	if w.rev["after-force"] <= before {
		t.Fatalf("the first write after the recovery got revision %d, not after the last one before it, %d", w.rev["after-force"], before)
	}

	// The lost member, back on its old data, is told it was removed and
	// stops; the survivor serves on alone.
	back := lost[0]
	back.dataDir = stale
	c.launch(back)
	if !back.proc.WaitExit(exitTimeout) || back.proc.ExitCode() != 0 ||
		!strings.Contains(back.proc.Log(), "this member was removed from the cluster; exiting") {
		t.Fatalf("%s on its old data: exited %v with code %d (%s), want exit 0 as a removed member",
			back.name, back.proc.Exited(), back.proc.ExitCode(), back.proc.LastLine())
	}
	cli.waitMembers(t, survivor)

	// The operator restarts it without the flag, and grows the cluster back.
	survivor.proc.Terminate(t)
	survivor.extra = snap
	c.restart(survivor)
	n4 := growBack(t, c, cli)
	w.put(t, survivor, "after-n4", "two")
	n5 := growBack(t, c, cli)
	w.put(t, n5, "after-n5", "three")
	cli.waitMembers(t, survivor, n4, n5)
	for _, m := range []*member{survivor, n4, n5} {
		waitValue(t, m, w.last(), w.val[w.last()])
		w.check(t, m, true)
		w.check(t, m, false)
	}
}
