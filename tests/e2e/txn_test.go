//go:build unix

package e2e

import (
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/wire"
)

// TestREADMETxnExample runs the README's transaction example as written
// against a three-node cluster: the transaction succeeds, and sent again,
// with alice's value changed by it, runs the failure branch.
func TestREADMETxnExample(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("the example uses curl, which is not installed")
	}
	c := startCluster(t, 3)
	block := docBlock(t, "README.md", "/v1/txn")
	for i, port := range []string{"12380", "22380", "32380"} {
		block = strings.ReplaceAll(block, "127.0.0.1:"+port, "127.0.0.1:"+strconv.Itoa(c.members[i].port))
	}
	block = strings.ReplaceAll(block, "curl ", "curl -s ")
	out := runDocScript(t, block)
	if !strings.Contains(out, `"succeeded":true`) || strings.Count(out, `"put"`) != 2 {
		t.Fatalf("the README's transaction printed %q, want it to succeed with two puts", out)
	}
	_, txn, _ := strings.Cut(block, "\n")
	again := runDocScript(t, txn)
	if !strings.Contains(again, `"succeeded":false`) || !strings.Contains(again, `"value":"NzA="`) {
		t.Fatalf("the README's transaction sent again printed %q, want the failure branch with alice's 70", again)
	}
}

// TestCLITxn moves two keys atomically with raftkv txn, in etcdctl's
// format, and sends the same transaction again: its compare is then stale,
// so the failure branch runs, exit 0, and nothing moves twice.
func TestCLITxn(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := startCluster(t, 3)
	cli := cliRunner{dir: t.TempDir(), env: []string{"RAFTKV_ENDPOINTS=" + clientURLs(c.members...)}}
	rev := strings.TrimSuffix(cli.ok(t, "put", "acct/alice", "100"), "\n")
	before, err := strconv.ParseUint(rev, 10, 64)
	if err != nil {
		t.Fatalf("put printed no revision: %v", err)
	}
	cli.ok(t, "put", "acct/bob", "0")
	txn := []byte(`mod("acct/alice") = "` + rev + `"

put acct/alice 70
put acct/bob 30

get acct/alice
`)
	res := cli.withStdin(t, txn, "txn")
	lines := strings.Split(res.stdout, "\n")
	if res.code != 0 || res.stderr != "" || len(lines) != 6 || lines[0] != "SUCCESS" || lines[2] != lines[4] {
		t.Fatalf("txn: exit %d, stdout %q, stderr %q; want SUCCESS and both puts at one revision", res.code, res.stdout, res.stderr)
	}
	if after, err := strconv.ParseUint(lines[2], 10, 64); err != nil || after <= before {
		t.Fatalf("txn wrote at revision %q, want one after %d", lines[2], before)
	}
	for key, want := range map[string]string{"acct/alice": "70\n", "acct/bob": "30\n"} {
		if got := cli.ok(t, "get", key); got != want {
			t.Fatalf("after the transaction %s = %q, want %q", key, got, want)
		}
	}

	res = cli.withStdin(t, txn, "txn")
	if res.code != 0 || res.stdout != "FAILURE\n\n70\n" || res.stderr != "" {
		t.Fatalf("stale txn: exit %d, stdout %q, stderr %q; want exit 0 and FAILURE with alice's 70", res.code, res.stdout, res.stderr)
	}
	res = cli.withStdin(t, txn, "txn", "-o", "json")
	var answer wire.TxnResponse
	if err := json.Unmarshal([]byte(res.stdout), &answer); err != nil || res.code != 0 || answer.Succeeded ||
		len(answer.Results) != 1 || answer.Results[0].Get == nil || answer.Results[0].Get.KV == nil || string(answer.Results[0].Get.KV.Value) != "70" {
		t.Fatalf("stale txn -o json: exit %d, stdout %q (%v); want the failure branch with alice's 70", res.code, res.stdout, err)
	}
	if got := cli.ok(t, "get", "acct/bob"); got != "30\n" {
		t.Fatalf("after the stale transaction acct/bob = %q, want 30: nothing moves twice", got)
	}

	// A line that cannot be read is a usage error naming the line; nothing
	// is sent.
	res = cli.withStdin(t, []byte("mod(\"acct/alice\") = \"1\"\n\nput acct/bob\n"), "txn")
	if res.code != 2 || res.stdout != "" || !strings.HasPrefix(res.stderr, "raftkv: line 3 (put acct/bob): put takes KEY VALUE") {
		t.Fatalf("bad input: exit %d, stdout %q, stderr %q; want exit 2 naming line 3", res.code, res.stdout, res.stderr)
	}
}
