package main

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/internal/testcluster"
)

// TestHealth asks a real three-member cluster: every endpoint healthy exits
// 0; a stopped member, or a port where nothing listens, is unhealthy and
// exits 5, after the lines of the others.
func TestHealth(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	c.WaitLeader()
	urls := []string{c.ClientURL(1), c.ClientURL(2), c.ClientURL(3)}
	health := func(args ...string) ([]string, int) {
		t.Helper()
		out, err := runCommand(t, append([]string{"health"}, args...)...)
		return strings.Split(strings.TrimSuffix(out, "\n"), "\n"), exitStatus(err)
	}

	// The endpoints from the environment, as for every client command. A
	// member can be briefly unhealthy while it applies what it learned
	// committed at the election; the check is repeated until it is not.
	t.Setenv("RAFTKV_ENDPOINTS", strings.Join(urls, ","))
	var lines []string
	c.WaitFor("every member healthy", func() error {
		var code int
		if lines, code = health(); code != exitOK {
			return fmt.Errorf("exit %d: %q", code, lines)
		}
		return nil
	})
	for i, line := range lines {
		if !strings.HasPrefix(line, urls[i]+" is healthy: took ") {
			t.Errorf("line %d: %q, want %s healthy", i+1, line, urls[i])
		}
	}

	// A closed port refuses; a listener that never accepts never answers.
	down := closedEndpoint(t)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	mute := "http://" + silent.Addr().String()
	// Member 1 answers its own health within a second (its linearizable
	// read's budget): on a loaded machine that can take a retry.
	var got [3]healthResult
	c.WaitFor("member 1 healthy beside a closed and a silent port", func() error {
		lines, code := health("--endpoints", strings.Join([]string{urls[0], down, mute}, ","), "--timeout", "1s", "-o", "json")
		if code != exitUnavailable || len(lines) != 3 {
			t.Fatalf("health with a closed port: exit %d, %q", code, lines)
		}
		got = [3]healthResult{}
		for i, l := range lines {
			if err := json.Unmarshal([]byte(l), &got[i]); err != nil {
				t.Fatalf("line %d: %q: %v", i+1, l, err)
			}
		}
		if r := got[0]; r.Endpoint != urls[0] || !r.Health || r.TookMs <= 0 || r.Reason != "" {
			return fmt.Errorf("member 1's line: %q", lines[0])
		}
		return nil
	})
	if r := got[1]; r.Endpoint != down || r.Health || !strings.Contains(r.Reason, "connection refused") || strings.Contains(r.Reason, down) {
		t.Errorf("the closed port's line: %+v", got[1])
	}
	if r := got[2]; r.Endpoint != mute || r.Health || r.Reason != "no answer within --timeout 1s" {
		t.Errorf("the silent port's line: %+v", got[2])
	}

	stopped := urls[2]
	if err := c.Stop(3); err != nil {
		t.Fatal(err)
	}
	lines, code := health("--endpoints", strings.Join(urls, ","))
	if code != exitUnavailable || len(lines) != 3 || !strings.HasPrefix(lines[2], stopped+" is unhealthy: ") {
		t.Fatalf("health with member 3 stopped: exit %d, %q", code, lines)
	}
}
