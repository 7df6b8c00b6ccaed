package httpapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/httpapi"
	"github.com/raftkv/raftkv/internal/testcluster"
	"github.com/raftkv/raftkv/listener"
	"github.com/raftkv/raftkv/raftnode"
)

// memberJSON and membersJSON are the documented bodies of /v1/members
// (docs/API.md); decoding is strict so that a renamed field fails.
type progressJSON struct {
	Match uint64 `json:"match"`
	Next  uint64 `json:"next"`
	State string `json:"state"`
}

type memberJSON struct {
	ID         uint64        `json:"id"`
	Name       string        `json:"name"`
	PeerURLs   []string      `json:"peer_urls"`
	ClientURLs []string      `json:"client_urls"`
	IsLearner  bool          `json:"is_learner"`
	IsLeader   bool          `json:"is_leader"`
	Started    bool          `json:"started"`
	Progress   *progressJSON `json:"progress"`
}

type membersJSON struct {
	Members   []memberJSON `json:"members"`
	Leader    uint64       `json:"leader"`
	Term      uint64       `json:"term"`
	ClusterID string       `json:"cluster_id"`
}

type transferJSON struct {
	Leader uint64 `json:"leader"`
	Term   uint64 `json:"term"`
}

// clusterNode is a client of member id of a testcluster, with the helpers
// of node. It keeps no connections open.
func clusterNode(t *testing.T, c *testcluster.Cluster, id uint64) *node {
	t.Helper()
	return &node{srv: c.Server(id), url: c.ClientURL(id),
		http: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, ExpectContinueTimeout: 5 * time.Second}}}
}

// expect checks a response's status and, for an error, its code.
func expect(t *testing.T, what string, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s = %d %s, want %d %s", what, r.status, r.body, status, code)
	}
	if code != "" {
		if got := errorCode(t, r); got != code {
			t.Fatalf("%s: code %q, want %q (%s)", what, got, code, r.body)
		}
	}
}

// checkRaftHeaders checks that a response names leader and term.
func checkRaftHeaders(t *testing.T, r response, leader, term uint64) {
	t.Helper()
	for name, want := range map[string]uint64{"X-Raft-Leader": leader, "X-Raft-Term": term} {
		if got := r.header.Values(name); len(got) != 1 || got[0] != strconv.FormatUint(want, 10) {
			t.Fatalf("%s = %q, want %d", name, got, want)
		}
	}
}

func jsonBody(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// memberIDs returns the ids of a member table and which are learners.
func memberIDs(ms []raftnode.Member) (ids, learners []uint64) {
	for _, m := range ms {
		ids = append(ids, m.ID)
		if m.IsLearner {
			learners = append(learners, m.ID)
		}
	}
	return ids, learners
}

// TestMembers drives the member API of a three-member cluster through a
// follower, which forwards every request to the leader: the listing with
// the leader's progress, a learner that is added, refused promotion before
// it runs, started, and promoted once it caught up, every refusal with its
// code, peer URL updates and removal, and leadership transfers.
func TestMembers(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	leader := c.WaitLeader()
	follower := leader%3 + 1
	f := clusterNode(t, c, follower)
	clusterID := raftnode.FormatID(c.Node(leader).ClusterID())

	// The listing, asked of a follower, is the leader's: it has progress.
	var list membersJSON
	c.WaitFor("every member publishes itself", func() error {
		r := f.do(t, http.MethodGet, "/v1/members", nil)
		if r.status != http.StatusOK {
			return fmt.Errorf("GET /v1/members = %d %s", r.status, r.body)
		}
		list = membersJSON{}
		decodeStrict(t, r, &list)
		for _, m := range list.Members {
			if !m.Started || len(m.ClientURLs) == 0 {
				return fmt.Errorf("member %d not published: %+v", m.ID, m)
			}
		}
		checkRaftHeaders(t, r, list.Leader, list.Term)
		return nil
	})
	if list.Leader != leader || list.Term != c.Node(leader).Term() || list.ClusterID != clusterID || len(list.Members) != 3 {
		t.Fatalf("GET /v1/members = %+v, want leader %d, term %d, cluster %s, 3 members", list, leader, c.Node(leader).Term(), clusterID)
	}
	for i, m := range list.Members {
		id := uint64(i + 1)
		want := memberJSON{ID: id, Name: "raftkv-" + strconv.FormatUint(id, 10), PeerURLs: []string{c.PeerURL(id)},
			ClientURLs: []string{c.ClientURL(id)}, IsLeader: id == leader, Started: true, Progress: m.Progress}
		if m.ID != want.ID || m.Name != want.Name || !slices.Equal(m.PeerURLs, want.PeerURLs) ||
			!slices.Equal(m.ClientURLs, want.ClientURLs) || m.IsLearner || m.IsLeader != want.IsLeader || !m.Started {
			t.Fatalf("member %d = %+v, want %+v", id, m, want)
		}
		if p := m.Progress; p == nil || p.Match == 0 || p.Next <= p.Match || !slices.Contains([]string{"probe", "replicate", "snapshot"}, p.State) {
			t.Fatalf("member %d progress = %+v", id, p)
		}
	}

	// A learner is added; it cannot be promoted or lead before it runs.
	learner, learnerURL := c.ReserveMember()
	r := f.do(t, http.MethodPost, "/v1/members", jsonBody(t, map[string]any{"id": learner, "peer_urls": []string{learnerURL}, "learner": true}))
	expect(t, "add a learner", r, http.StatusCreated, "")
	var m memberJSON
	decodeStrict(t, r, &m)
	if m.ID != learner || !slices.Equal(m.PeerURLs, []string{learnerURL}) || !m.IsLearner || m.Started || m.IsLeader ||
		m.Name != "" || m.ClientURLs == nil || len(m.ClientURLs) != 0 {
		t.Fatalf("added learner = %+v", m)
	}
	expect(t, "promote a learner that never ran", f.do(t, http.MethodPost, fmt.Sprintf("/v1/members/%d/promote", learner), nil),
		http.StatusConflict, "learner_not_ready")
	expect(t, "transfer leadership to a learner", f.do(t, http.MethodPost, "/v1/leader/transfer", jsonBody(t, map[string]uint64{"to": learner})),
		http.StatusConflict, "not_voter")

	// Refusals: each with its code, and the member table unchanged.
	unused := "http://127.0.0.1:1"
	cases := []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/v1/members", fmt.Sprintf(`{"id": %d, "peer_urls": [%q]}`, learner, unused), 409, "member_exists"},
		{"POST", "/v1/members", fmt.Sprintf(`{"id": 2, "peer_urls": [%q], "learner": true}`, unused), 409, "member_exists"},
		{"POST", "/v1/members", fmt.Sprintf(`{"id": 99, "peer_urls": [%q]}`, c.PeerURL(1)), 409, "peer_url_exists"},
		{"POST", "/v1/members", fmt.Sprintf(`{"peer_urls": [%q], "learner": true}`, learnerURL), 409, "peer_url_exists"},
		{"POST", "/v1/members", `{"peer_urls": ["127.0.0.1:1"]}`, 400, "invalid_peer_url"},
		{"POST", "/v1/members", `{"peer_urls": ["http://127.0.0.1:1/path"]}`, 400, "invalid_peer_url"},
		{"POST", "/v1/members", `{"peer_urls": ["http://x y:1"]}`, 400, "invalid_peer_url"},
		{"POST", "/v1/members", `{"peer_urls": ["http://127.0.0.1:1", "http://127.0.0.1:1"]}`, 400, "invalid_peer_url"},
		{"POST", "/v1/members", `{"peer_urls": []}`, 400, "invalid_member"},
		{"POST", "/v1/members", `{"id": 5, "learner": true}`, 400, "invalid_member"},
		{"POST", "/v1/members", `{}`, 400, "invalid_member"},
		{"POST", "/v1/members", `null`, 400, "invalid_member"},
		{"POST", "/v1/members", ``, 400, "invalid_member"},
		{"POST", "/v1/members", `{"peer_urls": ["http://127.0.0.1:1"]`, 400, "invalid_member"},
		{"POST", "/v1/members", `{"peer_urls": ["http://127.0.0.1:1"], "voter": true}`, 400, "invalid_member"},
		{"POST", "/v1/members", `{"peer_urls": ["http://127.0.0.1:1"]} {}`, 400, "invalid_member"},
		{"POST", "/v1/members", `{"id": -1, "peer_urls": ["http://127.0.0.1:1"]}`, 400, "invalid_member"},
		{"POST", "/v1/members", `{"id": "5", "peer_urls": ["http://127.0.0.1:1"]}`, 400, "invalid_member"},
		{"POST", "/v1/members", `{"peer_urls": "http://127.0.0.1:1"}`, 400, "invalid_member"},
		{"POST", "/v1/members", `{"peer_urls": ["` + strings.Repeat("h", 70<<10) + `"]}`, 413, "request_too_large"},
		{"POST", "/v1/members/2/promote", "", 409, "not_learner"},
		{"POST", "/v1/members/99/promote", "", 404, "member_not_found"},
		{"POST", "/v1/members/abc/promote", "", 400, "invalid_member_id"},
		{"PUT", "/v1/members/99", `{"peer_urls": ["http://127.0.0.1:1"]}`, 404, "member_not_found"},
		{"PUT", "/v1/members/2", `{}`, 400, "invalid_member"},
		{"PUT", "/v1/members/2", `{"peer_urls": ["http://127.0.0.1:1"], "learner": true}`, 400, "invalid_member"},
		{"PUT", "/v1/members/2", fmt.Sprintf(`{"peer_urls": [%q]}`, c.PeerURL(1)), 409, "peer_url_exists"},
		{"PUT", "/v1/members/2", `{"peer_urls": ["ftp://127.0.0.1:1"]}`, 400, "invalid_peer_url"},
		{"DELETE", "/v1/members/99", "", 404, "member_not_found"},
		{"DELETE", "/v1/members/abc", "", 400, "invalid_member_id"},
		{"DELETE", "/v1/members/0", "", 400, "invalid_member_id"},
		{"DELETE", "/v1/members/-1", "", 400, "invalid_member_id"},
		{"POST", "/v1/leader/transfer", `{"to": 99}`, 404, "member_not_found"},
		{"POST", "/v1/leader/transfer", `{"to": "2"}`, 400, "bad_body"},
		{"POST", "/v1/leader/transfer", `{"leader": 2}`, 400, "bad_body"},
		{"GET", "/v1/members/2", "", 405, "method_not_allowed"},
		{"POST", "/v1/members/2", "", 405, "method_not_allowed"},
		{"DELETE", "/v1/members", "", 405, "method_not_allowed"},
		{"GET", "/v1/members/2/promote", "", 405, "method_not_allowed"},
		{"GET", "/v1/leader/transfer", "", 405, "method_not_allowed"},
		{"GET", "/v1/members/", "", 404, "not_found"},
		{"GET", "/v1/members/2/", "", 404, "not_found"},
		{"POST", "/v1/members/2/demote", "", 404, "not_found"},
		{"POST", "/v1/members/2/promote/now", "", 404, "not_found"},
		{"GET", "/v1/membersx", "", 404, "not_found"},
		{"POST", "/v1/leader", "", 404, "not_found"},
		{"POST", "/v1/leader/transfer/2", "", 404, "not_found"},
	}
	for _, tc := range cases {
		r := f.do(t, tc.method, tc.path, []byte(tc.body))
		what := fmt.Sprintf("%s %s %.60s", tc.method, tc.path, tc.body)
		expect(t, what, r, tc.status, tc.code)
		if tc.code == "invalid_peer_url" && bytes.Count(r.body, []byte(`\"`)) > 2 {
			// url.Parse's message quotes the URL again inside the quoted
			// URL, which JSON then escapes once more.
			t.Errorf("%s: %s quotes the URL more than once", what, r.body)
		}
		if tc.status == 405 && r.header.Get("Allow") == "" {
			t.Fatalf("%s: 405 without Allow", what)
		}
		if tc.status == 503 && r.header.Get("Retry-After") == "" {
			t.Fatalf("%s: 503 without Retry-After", what)
		}
		if ids, learners := memberIDs(c.Node(leader).Members()); !slices.Equal(ids, []uint64{1, 2, 3, learner}) || !slices.Equal(learners, []uint64{learner}) {
			t.Fatalf("%s: members %v (learners %v) after a refusal", what, ids, learners)
		}
	}

	// A member with a generated id: its peer URLs change, it is removed,
	// and its id never comes back.
	r = f.do(t, http.MethodPost, "/v1/members", []byte(`{"peer_urls": ["http://127.0.0.1:1"], "learner": true}`))
	expect(t, "add a member without an id", r, http.StatusCreated, "")
	m = memberJSON{}
	decodeStrict(t, r, &m)
	if slices.Contains([]uint64{0, 1, 2, 3, learner}, m.ID) || !m.IsLearner {
		t.Fatalf("added member = %+v, want a fresh id", m)
	}
	extra := m.ID
	extraPath := "/v1/members/" + strconv.FormatUint(extra, 10)
	r = f.do(t, http.MethodPut, extraPath, []byte(`{"peer_urls": ["http://127.0.0.1:2", "http://127.0.0.1:3"]}`))
	expect(t, "update peer URLs", r, http.StatusOK, "")
	m = memberJSON{}
	decodeStrict(t, r, &m)
	if m.ID != extra || !slices.Equal(m.PeerURLs, []string{"http://127.0.0.1:2", "http://127.0.0.1:3"}) || !m.IsLearner {
		t.Fatalf("updated member = %+v", m)
	}
	if got := c.Node(follower).Members(); !slices.ContainsFunc(got, func(m raftnode.Member) bool {
		return m.ID == extra && slices.Equal(m.PeerURLs, []string{"http://127.0.0.1:2", "http://127.0.0.1:3"})
	}) {
		// The change is applied on the leader when it answers; the follower
		// may apply it a moment later.
		c.WaitFor("the follower applies the update", func() error {
			for _, m := range c.Node(follower).Members() {
				if m.ID == extra && len(m.PeerURLs) == 2 {
					return nil
				}
			}
			return errors.New("not yet")
		})
	}
	r = f.do(t, http.MethodDelete, extraPath, nil)
	expect(t, "remove a member", r, http.StatusOK, "")
	var removed struct {
		Removed uint64 `json:"removed"`
	}
	decodeStrict(t, r, &removed)
	if removed.Removed != extra {
		t.Fatalf("DELETE %s = %s", extraPath, r.body)
	}
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/v1/members", fmt.Sprintf(`{"id": %d, "peer_urls": ["http://127.0.0.1:4"], "learner": true}`, extra)},
		{"PUT", extraPath, `{"peer_urls": ["http://127.0.0.1:4"]}`},
		{"POST", extraPath + "/promote", ""},
		{"DELETE", extraPath, ""},
	} {
		expect(t, tc.method+" "+tc.path+" of a removed member", f.do(t, tc.method, tc.path, []byte(tc.body)), http.StatusGone, "member_removed")
	}

	// The learner starts, catches up, and is promoted.
	c.StartJoining(learner)
	c.WaitFor("the learner is promoted once it caught up", func() error {
		r := f.do(t, http.MethodPost, fmt.Sprintf("/v1/members/%d/promote", learner), nil)
		if r.status == http.StatusConflict && errorCode(t, r) == "learner_not_ready" {
			return fmt.Errorf("promote: %s", r.body)
		}
		expect(t, "promote", r, http.StatusOK, "")
		m = memberJSON{}
		decodeStrict(t, r, &m)
		return nil
	})
	if m.ID != learner || m.IsLearner || m.Progress == nil {
		t.Fatalf("promoted member = %+v", m)
	}
	expect(t, "promote again", f.do(t, http.MethodPost, fmt.Sprintf("/v1/members/%d/promote", learner), nil), http.StatusConflict, "not_learner")
	c.WaitFor("the new voter publishes itself", func() error {
		r := f.do(t, http.MethodGet, "/v1/members", nil)
		if r.status != http.StatusOK {
			return fmt.Errorf("GET /v1/members = %d %s", r.status, r.body)
		}
		list = membersJSON{}
		decodeStrict(t, r, &list)
		i := slices.IndexFunc(list.Members, func(m memberJSON) bool { return m.ID == learner })
		if len(list.Members) != 4 || i < 0 || list.Members[i].IsLearner || !list.Members[i].Started ||
			!slices.Equal(list.Members[i].ClientURLs, []string{c.ClientURL(learner)}) {
			return fmt.Errorf("members %+v", list.Members)
		}
		return nil
	})

	// Leadership moves to a chosen member when the leader is asked...
	transfer := func(via *node, body string, want uint64) transferJSON {
		t.Helper()
		before := c.Node(c.WaitLeader()).Term()
		r := via.do(t, http.MethodPost, "/v1/leader/transfer", []byte(body))
		expect(t, "transfer "+body, r, http.StatusOK, "")
		var got transferJSON
		decodeStrict(t, r, &got)
		if (want != 0 && got.Leader != want) || got.Term <= before {
			t.Fatalf("transfer %s = %+v, want leader %d in a term after %d", body, got, want, before)
		}
		checkRaftHeaders(t, r, got.Leader, got.Term)
		if l := c.WaitLeader(); l != got.Leader {
			t.Fatalf("after transfer %s the leader is %d, the answer said %d", body, l, got.Leader)
		}
		return got
	}
	leader = c.WaitLeader()
	transfer(clusterNode(t, c, leader), fmt.Sprintf(`{"to": %d}`, learner), learner)
	// ... and when a follower is asked: it forwards the request.
	to := leader // the former leader
	transfer(clusterNode(t, c, to%3+1), fmt.Sprintf(`{"to": %d}`, to), to)
	// Without a target, the most caught-up other voter takes over.
	if got := transfer(f, "", 0); got.Leader == to {
		t.Fatalf("transfer without a target kept leader %d", to)
	}
}

// TestAddMemberNeedsStartedQuorum checks etcd's strict reconfiguration
// check: with one of three members down, adding a voter that is not running
// would leave two started voters of four, fewer than a quorum, so it is
// refused and the member table stays as it was.
func TestAddMemberNeedsStartedQuorum(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	leader := c.WaitLeader()
	via, down := leader%3+1, (leader+1)%3+1
	c.WaitFor("the leader publishes its client URL", func() error {
		for _, m := range c.Node(via).Members() {
			if m.ID == leader && len(m.ClientURLs) > 0 {
				return nil
			}
		}
		return errors.New("not yet")
	})
	if err := c.Stop(down); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(fmt.Sprintf("the leader sees member %d down", down), func() error {
		if c.Node(leader).Started(down) {
			return errors.New("still connected")
		}
		return nil
	})
	n := clusterNode(t, c, via)
	r := n.do(t, http.MethodPost, "/v1/members", []byte(`{"peer_urls": ["http://127.0.0.1:1"]}`))
	expect(t, "add a voter with a member down", r, http.StatusConflict, "not_enough_started")
	for _, id := range []uint64{leader, via} {
		if ids, learners := memberIDs(c.Node(id).Members()); !slices.Equal(ids, []uint64{1, 2, 3}) || len(learners) != 0 {
			t.Fatalf("member %d's table after the refusal: %v (learners %v)", id, ids, learners)
		}
	}
	// A learner does not vote, so adding one is fine.
	r = n.do(t, http.MethodPost, "/v1/members", []byte(`{"peer_urls": ["http://127.0.0.1:1"], "learner": true}`))
	expect(t, "add a learner with a member down", r, http.StatusCreated, "")
}

// fakeCluster is a follower whose leader is wherever a test says, for the
// failures of forwarding that real members cannot produce on demand. Only
// the methods forwarding uses are implemented.
type fakeCluster struct {
	httpapi.Cluster
	leader  uint64
	members []raftnode.Member
}

func (f *fakeCluster) ID() uint64                             { return 1 }
func (f *fakeCluster) Leader() uint64                         { return f.leader }
func (f *fakeCluster) IsLeader() bool                         { return f.leader == 1 }
func (f *fakeCluster) Term() uint64                           { return 7 }
func (f *fakeCluster) Members() []raftnode.Member             { return f.members }
func (f *fakeCluster) Progress() map[uint64]raftnode.Progress { return nil }

// TestForwarding checks what a follower answers when it forwards a request:
// the leader's answer with the leader's headers; 503 when no leader can be
// reached, so the client may retry; 504 when the request reached the leader
// but no answer came back, since a change may then have been applied; and
// 503 not_leader for a forwarded request that finds leadership moved, which
// is never forwarded again.
func TestForwarding(t *testing.T) {
	var got *http.Request
	var gotBody string
	leaderSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got, gotBody = r, string(b)
		w.Header().Set("X-Raft-Leader", "2")
		w.Header().Set("X-Raft-Term", "9")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id": 5}`))
	}))
	defer leaderSrv.Close()
	hangUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer hangUp.Close()
	ln, err := listener.New("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String()
	ln.Close()

	serve := func(leaderURL string, leader uint64, method, path, body string, header http.Header) *httptest.ResponseRecorder {
		t.Helper()
		members := []raftnode.Member{{ID: 1, ClientURLs: []string{"http://127.0.0.1:1"}}, {ID: 2}}
		if leaderURL != "" {
			members[1].ClientURLs = []string{leaderURL}
		}
		api := httpapi.New(httpapi.Config{Cluster: &fakeCluster{leader: leader, members: members}, RequestTimeout: 2 * time.Second})
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		for k, v := range header {
			req.Header[k] = v
		}
		w := httptest.NewRecorder()
		api.ServeHTTP(w, req)
		return w
	}
	check := func(what string, w *httptest.ResponseRecorder, status int, code, leader string) {
		t.Helper()
		r := response{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
		expect(t, what, r, status, code)
		if got := r.header.Values("X-Raft-Leader"); len(got) != 1 || got[0] != leader {
			t.Fatalf("%s: X-Raft-Leader %q, want %s", what, got, leader)
		}
		if status == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "" {
			t.Fatalf("%s: 503 without Retry-After", what)
		}
	}

	w := serve(leaderSrv.URL, 2, "POST", "/v1/members?x=1", `{"peer_urls": ["http://127.0.0.1:5"]}`, nil)
	check("forwarded POST", w, http.StatusCreated, "", "2")
	if w.Body.String() != `{"id": 5}` || w.Header().Get("X-Raft-Term") != "9" ||
		got.Method != "POST" || got.URL.RequestURI() != "/v1/members?x=1" || got.Header.Get("X-Raftkv-Forwarded") != "1" ||
		gotBody != `{"peer_urls": ["http://127.0.0.1:5"]}` {
		t.Fatalf("forwarded %s %s (X-Raftkv-Forwarded %q) body %q; answered %q", got.Method, got.URL, got.Header.Get("X-Raftkv-Forwarded"), gotBody, w.Body)
	}

	check("no leader", serve("", 0, "GET", "/v1/members", "", nil), http.StatusServiceUnavailable, "no_leader", "0")
	check("leader without client URL", serve("", 2, "POST", "/v1/members/3/promote", "", nil), http.StatusServiceUnavailable, "no_leader", "2")
	check("leader unreachable", serve(deadURL, 2, "DELETE", "/v1/members/3", "", nil), http.StatusServiceUnavailable, "no_leader", "2")
	check("leader hangs up on a read", serve(hangUp.URL, 2, "GET", "/v1/members", "", nil), http.StatusServiceUnavailable, "no_leader", "2")
	check("leader hangs up on a change", serve(hangUp.URL, 2, "POST", "/v1/leader/transfer", `{"to": 3}`, nil), http.StatusGatewayTimeout, "timeout_outcome_unknown", "2")
	check("forwarded to a former leader", serve(leaderSrv.URL, 2, "GET", "/v1/members", "", http.Header{"X-Raftkv-Forwarded": {"3"}}),
		http.StatusServiceUnavailable, "not_leader", "2")
}
