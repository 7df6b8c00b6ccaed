//go:build unix

package e2e

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
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
