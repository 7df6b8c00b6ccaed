package server_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/internal/testcluster"
)

// TestLostQuorum checks how a leader that lost its quorum answers: a write it
// accepted but cannot commit is reported as 504 with an unknown outcome (it
// may still commit if the followers come back), and once the leader has
// stepped down writes are refused with 503.
func TestLostQuorum(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{
		Size: 3,
		// CheckQuorum makes a leader step down only after a full election
		// timeout without hearing from a quorum: 1 s here, which leaves the
		// 200 ms write below well inside the window where it still leads.
		ElectionTicks:  50,
		RequestTimeout: 200 * time.Millisecond,
	})
	leader := c.WaitLeader()
	if _, err := c.Put(leader, "before", "v"); err != nil {
		t.Fatal(err)
	}
	for _, id := range c.Running() {
		if id != leader {
			if err := c.Stop(id); err != nil {
				t.Fatal(err)
			}
		}
	}

	_, err := c.Put(leader, "during", "v")
	assertHTTPError(t, err, http.StatusGatewayTimeout, "timeout_outcome_unknown")

	c.WaitFor("the leader to step down and refuse writes", func() error {
		_, err := c.Put(leader, "after", "v")
		var he *testcluster.HTTPError
		if errors.As(err, &he) && he.Status == http.StatusServiceUnavailable && strings.Contains(he.Body, "no_leader") {
			return nil
		}
		return fmt.Errorf("PUT: %v", err)
	})
	// Serializable reads still answer from local state.
	if v, err := c.Get(leader, "before", testcluster.Serializable); err != nil || v != "v" {
		t.Fatalf("serializable read without a quorum = %q, %v", v, err)
	}
}

func assertHTTPError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var he *testcluster.HTTPError
	if !errors.As(err, &he) || he.Status != status || !strings.Contains(he.Body, `"code":"`+code+`"`) {
		t.Fatalf("err = %v, want status %d with code %s", err, status, code)
	}
}

// TestLinearizableReadWithoutQuorumFailsFast checks that a node that has
// known no leader for longer than an election takes answers linearizable
// reads with 503 no_leader at once, as it does writes, rather than holding
// each for the whole request timeout (30 s here).
func TestLinearizableReadWithoutQuorumFailsFast(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3, RequestTimeout: 30 * time.Second})
	leader := c.WaitLeader()
	f := otherThan(c, leader)
	for _, id := range c.Running() {
		if id != f {
			if err := c.Stop(id); err != nil {
				t.Fatal(err)
			}
		}
	}
	client := &http.Client{Timeout: 5 * time.Second}
	c.WaitFor("a linearizable read to answer 503 no_leader", func() error {
		resp, err := client.Get(c.ClientURL(f) + "/v1/kv/k")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"no_leader"`) {
			return fmt.Errorf("GET = %d %s", resp.StatusCode, body)
		}
		return nil
	})
}
