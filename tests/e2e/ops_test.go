//go:build unix

package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// memberJSON is a member in `raftkv member list -o json`.
type memberJSON struct {
	ID         uint64   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls"`
	IsLearner  bool     `json:"is_learner"`
	IsLeader   bool     `json:"is_leader"`
	Started    bool     `json:"started"`
}

// memberList is `raftkv member list -o json`.
type memberList struct {
	Members []memberJSON `json:"members"`
	Leader  uint64       `json:"leader"`
	Term    uint64       `json:"term"`
}

func (l memberList) member(id int) (memberJSON, bool) {
	i := slices.IndexFunc(l.Members, func(m memberJSON) bool { return m.ID == uint64(id) })
	if i < 0 {
		return memberJSON{}, false
	}
	return l.Members[i], true
}

// listMembers runs `raftkv member list -o json`.
func (r cliRunner) listMembers(t *testing.T) memberList {
	t.Helper()
	var l memberList
	if err := json.Unmarshal([]byte(r.ok(t, "member", "list", "-o", "json")), &l); err != nil {
		t.Fatalf("member list -o json: %v", err)
	}
	return l
}

// waitMembers waits until `member list` shows exactly the members ms, each
// started with its peer and client URL, and returns the listing.
func (r cliRunner) waitMembers(t *testing.T, ms ...*member) memberList {
	t.Helper()
	var l memberList
	err := eventually(leaderTimeout, func() error {
		res := r.run(t, "member", "list", "-o", "json")
		if res.code != 0 {
			return fmt.Errorf("member list: exit %d: %s", res.code, res.stderr)
		}
		l = memberList{}
		if err := json.Unmarshal([]byte(res.stdout), &l); err != nil {
			t.Fatalf("member list -o json printed %q: %v", res.stdout, err)
		}
		if len(l.Members) != len(ms) {
			return fmt.Errorf("%d members, want %d: %+v", len(l.Members), len(ms), l.Members)
		}
		for _, m := range ms {
			got, ok := l.member(m.id)
			if !ok || !got.Started || !slices.Equal(got.PeerURLs, []string{m.peerURL}) ||
				!slices.Equal(got.ClientURLs, []string{clientURLs(m)}) {
				return fmt.Errorf("member %d is %+v, want it started at %s and %s", m.id, got, m.peerURL, clientURLs(m))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// statusLine is a line of `raftkv status -o json`.
type statusLine struct {
	ID     uint64  `json:"id"`
	Error  string  `json:"error"`
	Lag    *uint64 `json:"lag"`
	Status *struct {
		RaftState string `json:"raft_state"`
	} `json:"status"`
}

// table splits a command's table output into its header and rows of
// blank-separated fields.
func table(t *testing.T, out string) (header string, rows map[string][]string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	rows = map[string][]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		rows[f[0]] = f
	}
	return strings.Join(strings.Fields(lines[0]), " "), rows
}

// TestOperations drives the operator's commands against a three-process
// cluster: member list, adding a learner that joins and is promoted once
// caught up, leader transfer, removal, and status with a member down.
func TestOperations(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := startCluster(t, 3)
	n1, n2, n3 := c.members[0], c.members[1], c.members[2]
	cli := cliRunner{dir: t.TempDir(), env: []string{"RAFTKV_ENDPOINTS=" + clientURLs(n1, n2, n3)}}

	// member list: the table of the three members, one of them leading.
	l := cli.waitMembers(t, n1, n2, n3)
	header, rows := table(t, cli.ok(t, "member", "list"))
	if header != "ID NAME STARTED LEARNER LEADER PEER-URLS CLIENT-URLS MATCH" || len(rows) != 3 {
		t.Fatalf("member list: header %q, %d rows", header, len(rows))
	}
	leaders := 0
	for _, m := range c.members {
		row := rows[strconv.Itoa(m.id)]
		if len(row) != 8 || row[1] != "raftkv-"+strconv.Itoa(m.id) || row[2] != "true" || row[3] != "false" ||
			row[5] != m.peerURL || row[6] != clientURLs(m) {
			t.Fatalf("member list row of %s: %q", m.name, row)
		}
		if row[4] == "true" {
			leaders++
			if strconv.FormatUint(l.Leader, 10) != row[0] {
				t.Fatalf("member list: %s leads, the JSON said %d", m.name, l.Leader)
			}
		}
		if _, err := strconv.ParseUint(row[7], 10, 64); err != nil {
			t.Fatalf("member list: MATCH of %s is %q", m.name, row[7])
		}
	}
	if leaders != 1 {
		t.Fatalf("member list shows %d leaders", leaders)
	}

	// A learner joins, catches up and is promoted.
	n4 := c.addMember()
	if out := cli.ok(t, "member", "add", n4.peerURL, "--id", "4", "--learner"); out != "4\n" {
		t.Fatalf("member add printed %q, want the id", out)
	}
	l = cli.listMembers(t)
	if m, ok := l.member(4); !ok || !m.IsLearner || m.Started {
		t.Fatalf("member 4 after member add --learner: %+v", m)
	}
	c.launch(n4)
	if err := c.waitUp(n4); err != nil {
		t.Fatal(err)
	}
	err := eventually(leaderTimeout, func() error {
		r := cli.run(t, "member", "promote", "4")
		switch {
		case r.code == 0 && r.stdout == "4\n":
			return nil
		case r.code == 4 && strings.Contains(r.stderr, "learner_not_ready"):
			return fmt.Errorf("member promote 4: %s", r.stderr)
		}
		t.Fatalf("member promote 4: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	l = cli.waitMembers(t, n1, n2, n3, n4)
	if m, _ := l.member(4); m.IsLearner {
		t.Fatalf("member 4 after member promote: %+v", m)
	}
	waitValue(t, n4, "e2e-probe", "ok")

	// Leadership moves to the new voter.
	if out := cli.ok(t, "leader", "transfer", "--to", "4"); out != "4\n" {
		t.Fatalf("leader transfer --to 4 printed %q", out)
	}
	if l = cli.listMembers(t); l.Leader != 4 {
		t.Fatalf("leader after the transfer: %d, want 4", l.Leader)
	}

	// Refusals have their exit codes and name the API's code.
	cli.fails(t, 4, "not_learner", "member", "promote", "3")
	cli.fails(t, 4, "peer_url_exists", "member", "add", n1.peerURL)
	cli.fails(t, 4, "member_exists", "member", "add", "http://127.0.0.1:1", "--id", "2")
	cli.fails(t, 3, "member_not_found", "member", "remove", "99")
	cli.fails(t, 3, "member_not_found", "leader", "transfer", "--to", "99")
	cli.fails(t, 2, "member id", "member", "promote", "four")
	cli.fails(t, 2, "member remove takes ID; got 0 argument(s)", "member", "remove")

	// A removed member stops by itself, and its id cannot come back.
	if out := cli.ok(t, "member", "remove", "3"); out != "3\n" {
		t.Fatalf("member remove 3 printed %q", out)
	}
	if !n3.proc.WaitExit(exitTimeout) || n3.proc.ExitCode() != 0 {
		t.Fatalf("node3 did not exit 0 after its removal")
	}
	cli.fails(t, 4, "member_removed", "member", "add", "http://127.0.0.1:1", "--id", "3", "--learner")

	// status with a member down: every member has a line, the one that
	// is down says so.
	n2.proc.Kill(t)
	cli = cliRunner{dir: cli.dir, env: []string{"RAFTKV_ENDPOINTS=" + clientURLs(n2, n1, n4)}}
	header, rows = table(t, cli.ok(t, "status"))
	if header != "ID NAME STATE LEADER TERM APPLIED LAG DATA-SIZE" || len(rows) != 3 {
		t.Fatalf("status: header %q, rows %q", header, rows)
	}
	if row := rows["2"]; !slices.Equal(row, []string{"2", "raftkv-2", "unreachable", "-", "-", "-", "-", "-"}) {
		t.Fatalf("status of the killed member: %q", row)
	}
	leaderRow, followerRow := rows["4"], rows["1"]
	if len(leaderRow) != 8 || leaderRow[2] != "leader" || leaderRow[3] != "4" || leaderRow[6] != "0" {
		t.Fatalf("status of the leader: %q", leaderRow)
	}
	if len(followerRow) != 8 || followerRow[2] != "follower" || followerRow[3] != "4" || followerRow[4] != leaderRow[4] {
		t.Fatalf("status of the follower: %q (leader %q)", followerRow, leaderRow)
	}
	applied, err1 := strconv.ParseUint(followerRow[5], 10, 64)
	lag, err2 := strconv.ParseUint(followerRow[6], 10, 64)
	if err1 != nil || err2 != nil || applied == 0 || !strings.HasSuffix(followerRow[7], "B") {
		t.Fatalf("status of the follower: %q: applied %d, lag %d", followerRow, applied, lag)
	}

	var objs []statusLine
	for line := range strings.Lines(cli.ok(t, "status", "-o", "json")) {
		var o statusLine
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("status -o json line %q: %v", line, err)
		}
		objs = append(objs, o)
	}
	if len(objs) != 3 || objs[0].ID != 1 || objs[0].Status == nil || objs[0].Lag == nil ||
		objs[1].ID != 2 || objs[1].Error == "" || objs[1].Status != nil ||
		objs[2].ID != 4 || objs[2].Status == nil || objs[2].Status.RaftState != "leader" {
		t.Fatalf("status -o json = %+v", objs)
	}

	// Without a quorum there is no member list: status shows what the
	// endpoints that answer say of themselves, with a warning.
	n1.proc.Kill(t)
	var r result
	err = eventually(leaderTimeout, func() error {
		r = cli.run(t, "status")
		if r.code != 0 || !strings.Contains(r.stderr, "warning") {
			return fmt.Errorf("status: exit %d, stderr %q", r.code, r.stderr)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, rows = table(t, r.stdout); len(rows) != 1 || len(rows["4"]) != 8 || rows["4"][2] == "leader" || rows["4"][6] != "-" {
		t.Fatalf("status without a quorum: %q", r.stdout)
	}
	cli.fails(t, 5, "unavailable", "status", "--endpoints", clientURLs(n1, n2))
}
