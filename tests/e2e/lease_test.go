//go:build unix

package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/client"
)

// TestLeaseSurvivesKilledLeader renews a lease, kills the leader with
// SIGKILL, and checks that the key on the lease is still served for a TTL
// after the renewal (the new leader gives every lease its whole TTL again),
// that the lease then expires on the survivors without its holder, and that
// the killed member, restarted, agrees.
func TestLeaseSurvivesKilledLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := startCluster(t, 3)
	cl, err := client.New(strings.Split(clientURLs(c.members...), ","))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const ttl = 6 * time.Second
	l, err := cl.Grant(ctx, ttl, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Put(ctx, []byte("svc/a"), []byte("x"), client.Condition{}, client.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	leader := leaderSeenBy(c.members[0])
	if leader == 0 {
		t.Fatal("node 1 logged no leader after a committed write")
	}
	renewed := time.Now()
	if _, err := cl.KeepAliveOnce(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	victim := c.members[leader-1]
	victim.proc.Kill(t)
	survivor := c.members[leader%3]
	var served time.Time
	for {
		asked := time.Now()
		if asked.Sub(renewed) >= ttl {
			break
		}
		r, err := get(survivor, "v1/kv/svc/a", false)
		switch {
		case err == nil && r.status == 200:
			served = asked
		case err == nil && r.status == 404:
			t.Fatalf("svc/a was gone %v after its lease was renewed for %v", asked.Sub(renewed), ttl)
		}
		// Else 503 while the survivors elect a leader: ask again, after
		// the poll interval.
		time.Sleep(50 * time.Millisecond)
	}
	if served.IsZero() {
		t.Fatal("no read of svc/a succeeded within the TTL: the test proves nothing")
	}
	if err := eventually(time.Minute, func() error {
		r, err := get(survivor, "v1/kv/svc/a", false)
		if err != nil || r.status != 404 {
			return fmt.Errorf("svc/a: %v %v", r, err)
		}
		return nil
	}); err != nil {
		t.Fatalf("the lease did not expire without its holder: %v", err)
	}
	if _, err := cl.Put(ctx, []byte("after-expiry"), []byte("1"), client.Condition{}); err != nil {
		t.Fatal(err)
	}
	c.restart(victim)
	waitValue(t, victim, "v1/kv/after-expiry", "1")
	if r, err := get(victim, "v1/kv/svc/a", true); err != nil || r.status != 404 {
		t.Fatalf("the restarted leader serves svc/a after its lease expired: %v %v", r, err)
	}
	if _, err := cl.KeepAliveOnce(ctx, l.ID); !errors.Is(err, client.ErrLeaseNotFound) {
		t.Fatalf("keepalive of the expired lease: %v, want ErrLeaseNotFound", err)
	}
}

// TestREADMECoordinationExample runs the README's coordination example as
// written against a cluster: the service's key is there while its heartbeat
// runs and its delete is watched once the heartbeat is killed, the job runs
// under the lock with a fencing token, and the transaction moves the key.
func TestREADMECoordinationExample(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := startCluster(t, 3)
	out := runDocScript(t, docBlock(t, "README.md", "lease grant 5s"), "RAFTKV_ENDPOINTS="+clientURLs(c.members...))
	for _, want := range []string{
		"10.0.0.7:8080\n",
		"DELETE\nservices/web-1\n",
		"backing up with fencing token ",
		"SUCCESS\n",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("the README's example printed %q, without %q", out, want)
		}
	}
	r, err := get(c.members[0], "v1/kv/job/running", false)
	if err != nil || r.status != 200 || r.body != "build-42" {
		t.Fatalf("job/running after the README's txn: %v %v", r, err)
	}
	if r, err := get(c.members[0], "v1/kv/job/pending", false); err != nil || r.status != 404 {
		t.Fatalf("job/pending after the README's txn: %v %v", r, err)
	}
}

// TestLeasesDocFencingExample runs docs/LEASES.md's fencing example: the
// holder's write goes through, a write with an older token is refused.
func TestLeasesDocFencingExample(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := startCluster(t, 3)
	out := runDocScript(t, docBlock(t, "docs/LEASES.md", "fenced-write.sh"), "RAFTKV_ENDPOINTS="+clientURLs(c.members...))
	failure, success := strings.Index(out, "FAILURE"), strings.Index(out, "SUCCESS")
	if failure < 0 || success < failure || !strings.HasSuffix(out, "done\n") {
		t.Fatalf("the fencing example printed %q: want FAILURE (written), then SUCCESS (refused), then done", out)
	}
}
