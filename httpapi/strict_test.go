package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/internal/testcluster"
)

// TestStrictInput sends a real cluster, through a follower, the bodies and
// URLs an adversarial probe got accepted (docs/SECURITY.md, "Strict
// input"): fields named twice or in another case, an id that leaves no
// successor, ports outside 1-65535, and other spellings of a member's peer
// address. Each is refused with its status and code, and neither the member
// table nor the leader changes.
func TestStrictInput(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	leader := c.WaitLeader()
	follower := leader%3 + 1
	other := 6 - leader - follower
	f := clusterNode(t, c, follower)
	// As the follower sees it: the follower forwards to the client URL its
	// own table holds for the leader, which it learns after the leader
	// does.
	c.WaitFor("every member publishes itself", func() error {
		for _, m := range c.Node(follower).Members() {
			if !m.Started() {
				return fmt.Errorf("member %d has not published itself, as member %d sees it", m.ID, follower)
			}
		}
		return nil
	})

	port := func(id uint64) string {
		u, err := url.Parse(c.PeerURL(id))
		if err != nil {
			t.Fatal(err)
		}
		return u.Port()
	}
	p1 := port(1)
	unused := "http://127.0.0.1:1"
	cases := []struct {
		method, path, body string
		status             int
		code               string
		says               string // a part of the message
	}{
		// Names: the last of two "to" would move leadership.
		{"POST", "/v1/leader/transfer", fmt.Sprintf(`{"to": 99, "to": %d}`, other), 400, "bad_body", `field "to" appears twice`},
		{"POST", "/v1/leader/transfer", fmt.Sprintf(`{"to": 99, "TO": %d}`, other), 400, "bad_body", `fields "to" and "TO" are the same field`},
		{"POST", "/v1/leader/transfer", fmt.Sprintf(`{"To": %d}`, other), 400, "bad_body", `unknown field "To" (names are case-sensitive: use "to")`},
		{"POST", "/v1/leader/transfer", fmt.Sprintf(`{"\u0074o": 99, "to": %d}`, other), 400, "bad_body", "appears twice"},
		{"POST", "/v1/members", `{"Peer_URLs": ["http://127.0.0.1:1"], "learner": true}`, 400, "invalid_member", `use "peer_urls"`},
		{"POST", "/v1/members", `{"peer_urls": ["http://127.0.0.1:1"], "learner": true, "learner": false}`, 400, "invalid_member", "appears twice"},
		{"POST", "/v1/members", `{"id": 9, "ID": 10, "peer_urls": ["http://127.0.0.1:1"], "learner": true}`, 400, "invalid_member", "same field"},
		{"PUT", "/v1/members/2", `{"PEER_URLS": ["http://127.0.0.1:1"]}`, 400, "invalid_member", "case-sensitive"},
		// Ids: 2^64-1 left id-less adds no id to pick.
		{"POST", "/v1/members", `{"id": 18446744073709551615, "peer_urls": ["http://127.0.0.1:1"], "learner": true}`, 400, "invalid_member_id", "no larger than 9007199254740991"},
		{"POST", "/v1/members", `{"id": 9007199254740992, "peer_urls": ["http://127.0.0.1:1"], "learner": true}`, 400, "invalid_member_id", "no larger than"},
		{"POST", "/18446744073709551615", unused, 400, "invalid_member_id", "no larger than"},
		// Ports.
		{"POST", "/v1/members", `{"peer_urls": ["http://127.0.0.1:0"], "learner": true}`, 400, "invalid_peer_url", "from 1 to 65535"},
		{"POST", "/v1/members", `{"peer_urls": ["http://127.0.0.1:99999"], "learner": true}`, 400, "invalid_peer_url", "from 1 to 65535"},
		{"POST", "/v1/members", `{"peer_urls": ["http://127.0.0.1:65536"]}`, 400, "invalid_peer_url", "from 1 to 65535"},
		{"PUT", "/v1/members/2", `{"peer_urls": ["http://127.0.0.1:0"]}`, 400, "invalid_peer_url", "from 1 to 65535"},
		{"POST", "/9", "http://127.0.0.1:0", 400, "invalid_peer_url", "from 1 to 65535"},
		// Other spellings of member 1's peer address, as voters and learners.
		{"POST", "/v1/members", `{"peer_urls": ["http://127.1:` + p1 + `"]}`, 400, "invalid_peer_url", "write the address as 127.0.0.1"},
		{"POST", "/v1/members", `{"peer_urls": ["http://127.0.0.01:` + p1 + `"], "learner": true}`, 400, "invalid_peer_url", "write the address as 127.0.0.1"},
		{"POST", "/v1/members", `{"peer_urls": ["http://0x7f.0.0.1:` + p1 + `"], "learner": true}`, 400, "invalid_peer_url", "write the address as 127.0.0.1"},
		{"POST", "/v1/members", `{"peer_urls": ["http://2130706433:` + p1 + `"], "learner": true}`, 400, "invalid_peer_url", "write the address as 127.0.0.1"},
		{"POST", "/v1/members", `{"peer_urls": ["http://localhost:` + p1 + `"], "learner": true}`, 409, "peer_url_exists", "by member 1"},
		{"POST", "/v1/members", `{"peer_urls": ["http://[::ffff:127.0.0.1]:` + p1 + `"], "learner": true}`, 409, "peer_url_exists", "by member 1"},
		{"POST", "/v1/members", `{"peer_urls": ["http://127.0.0.1:0` + p1 + `"], "learner": true}`, 409, "peer_url_exists", "by member 1"},
		{"POST", "/v1/members", `{"peer_urls": ["HTTP://LOCALHOST.:` + p1 + `"], "learner": true}`, 409, "peer_url_exists", "by member 1"},
		{"POST", "/v1/members", `{"peer_urls": ["http://127.0.0.1:7", "http://localhost:7"], "learner": true}`, 400, "invalid_peer_url", "listed twice"},
		{"PUT", "/v1/members/2", `{"peer_urls": ["http://localhost:` + p1 + `"]}`, 409, "peer_url_exists", "by member 1"},
		{"POST", "/9", "http://localhost:" + p1, 409, "peer_url_exists", "by member 1"},
		{"POST", "/9", "http://127.1:" + p1, 400, "invalid_peer_url", "write the address as 127.0.0.1"},
	}
	wantMembers, _ := memberIDs(c.Node(leader).Members())
	for _, tc := range cases {
		r := f.do(t, tc.method, tc.path, []byte(tc.body))
		what := fmt.Sprintf("%s %s %s", tc.method, tc.path, tc.body)
		expect(t, what, r, tc.status, tc.code)
		var e struct{ Error string }
		if err := json.Unmarshal(r.body, &e); err != nil || !strings.Contains(e.Error, tc.says) {
			t.Errorf("%s: %s, want a message that says %q", what, r.body, tc.says)
		}
		for id := uint64(1); id <= 3; id++ {
			ids, learners := memberIDs(c.Node(id).Members())
			if !slices.Equal(ids, wantMembers) || len(learners) != 0 {
				t.Fatalf("%s: member %d's table is %v (learners %v), want %v", what, id, ids, learners, wantMembers)
			}
		}
		if got := c.Node(follower).Leader(); got != leader {
			t.Fatalf("%s: leader %d, want %d", what, got, leader)
		}
	}

	// A member's own address under another spelling is no conflict, and
	// an id-less add still finds an id.
	r := f.do(t, http.MethodPut, "/v1/members/2", []byte(`{"peer_urls": ["http://localhost:`+port(2)+`"]}`))
	expect(t, "respell member 2's own peer URL", r, http.StatusOK, "")
	r = f.do(t, http.MethodPost, "/v1/members", []byte(`{"peer_urls": ["http://127.0.0.1:1"], "learner": true}`))
	expect(t, "add a learner without an id", r, http.StatusCreated, "")
	var m memberJSON
	decodeStrict(t, r, &m)
	if m.ID != 4 || !m.IsLearner {
		t.Fatalf("added %+v, want learner 4", m)
	}
}
