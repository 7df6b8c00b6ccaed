package server_test

import (
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/raftkv/raftkv/internal/testcluster"
)

// TestStopIsPromptWithUnusedClientConnection checks that a client connection
// that never sent a request does not hold up Stop. Such connections are
// common: Go's http.Transport dials a spare one whenever a request finds no
// idle connection and then may not use it. net/http's Shutdown counts a
// connection in StateNew as active for its first five seconds, so waiting
// for Shutdown alone makes Stop take that long.
func TestStopIsPromptWithUnusedClientConnection(t *testing.T) {
	// Stop drains for at most a second; the bug this guards against took five
	// (net/http's grace for new connections). The margin absorbs a loaded CI.
	const bound = 4 * time.Second
	c := testcluster.New(t, testcluster.Config{Size: 1})
	c.WaitLeader()
	u, err := url.Parse(c.ClientURL(1))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The server accepts connections in order, so once a request on a later
	// connection is answered, the unused one is accepted and tracked.
	if _, err := c.Put(1, "k", "v"); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if err := c.Stop(1); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if took := time.Since(start); took > bound {
		t.Errorf("Stop took %v with one unused client connection open, want under %v", took, bound)
	}
}
