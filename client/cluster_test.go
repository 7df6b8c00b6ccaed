package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/internal/testcluster"
)

// wantAPIError asserts that err is an *APIError with status and code that
// matches every sentinel in is.
func wantAPIError(t *testing.T, what string, err error, status int, code string, is ...error) {
	t.Helper()
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != status || apiErr.Code != code {
		t.Fatalf("%s: err = %v, want %d %s", what, err, status, code)
	}
	for _, target := range is {
		if !errors.Is(err, target) {
			t.Fatalf("%s: err = %v does not match %v", what, err, target)
		}
	}
}

// memberByID returns member id of a listing, or fails the test.
func memberByID(t *testing.T, list client.MemberListResult, id uint64) client.Member {
	t.Helper()
	i := slices.IndexFunc(list.Members, func(m client.Member) bool { return m.ID == id })
	if i < 0 {
		t.Fatalf("member %d is not in the list %+v", id, list.Members)
	}
	return list.Members[i]
}

// waitStarted waits until the member list names every one of ids as started,
// with its client URL.
func waitStarted(t *testing.T, c *testcluster.Cluster, cl *client.Client, ids ...uint64) client.MemberListResult {
	t.Helper()
	var list client.MemberListResult
	c.WaitFor("members publish themselves", func() error {
		var err error
		if list, err = cl.MemberList(testContext(t)); err != nil {
			return err
		}
		for _, id := range ids {
			i := slices.IndexFunc(list.Members, func(m client.Member) bool { return m.ID == id })
			if i < 0 || !list.Members[i].Started || !slices.Contains(list.Members[i].ClientURLs, c.ClientURL(id)) {
				return fmt.Errorf("member %d not started with client URL %s: %+v", id, c.ClientURL(id), list.Members)
			}
		}
		return nil
	})
	return list
}

func TestMembers(t *testing.T) {
	c, leader := startCluster(t, testcluster.Config{})
	follower := leader%3 + 1
	// Through a follower first: member requests are forwarded to the
	// leader.
	cl := newClient(t, urls(c, follower, leader))

	t.Run("list", func(t *testing.T) {
		list := waitStarted(t, c, cl, 1, 2, 3)
		if len(list.Members) != 3 || list.Leader != leader || list.Term == 0 || list.ClusterID == "" {
			t.Fatalf("member list = %+v, want 3 members led by %d", list, leader)
		}
		for _, id := range []uint64{1, 2, 3} {
			m := memberByID(t, list, id)
			if m.Name == "" || m.IsLearner || m.IsLeader != (id == leader) ||
				!slices.Equal(m.PeerURLs, []string{c.PeerURL(id)}) || m.Progress == nil || m.Progress.Match == 0 {
				t.Errorf("member %d = %+v (progress %+v)", id, m, m.Progress)
			}
		}
	})

	t.Run("refusals", func(t *testing.T) {
		ctx := testContext(t)
		_, err := cl.MemberAdd(ctx, client.MemberAddRequest{ID: 1, PeerURLs: []string{closedPort(t)}})
		wantAPIError(t, "add an existing id", err, http.StatusConflict, "member_exists", client.ErrMemberExists, client.ErrConflict)
		_, err = cl.MemberAdd(ctx, client.MemberAddRequest{ID: 20, PeerURLs: []string{c.PeerURL(1)}})
		wantAPIError(t, "add a peer URL in use", err, http.StatusConflict, "peer_url_exists", client.ErrPeerURLExists, client.ErrConflict)
		_, err = cl.MemberAdd(ctx, client.MemberAddRequest{ID: 20, PeerURLs: []string{"ftp://127.0.0.1:1"}})
		wantAPIError(t, "add a bad peer URL", err, http.StatusBadRequest, "invalid_peer_url")
		if errors.Is(err, client.ErrConflict) {
			t.Fatalf("a 400 matches ErrConflict: %v", err)
		}
		_, err = cl.MemberPromote(ctx, follower)
		wantAPIError(t, "promote a voter", err, http.StatusConflict, "not_learner", client.ErrNotLearner, client.ErrConflict)

		_, err = cl.MemberPromote(ctx, 99)
		wantAPIError(t, "promote a stranger", err, http.StatusNotFound, "member_not_found", client.ErrMemberNotFound)
		_, err = cl.MemberUpdate(ctx, 99, []string{closedPort(t)})
		wantAPIError(t, "update a stranger", err, http.StatusNotFound, "member_not_found", client.ErrMemberNotFound)
		err = cl.MemberRemove(ctx, 99)
		wantAPIError(t, "remove a stranger", err, http.StatusNotFound, "member_not_found", client.ErrMemberNotFound)
		if errors.Is(err, client.ErrConflict) || errors.Is(err, client.ErrNotFound) {
			t.Fatalf("member_not_found matches ErrConflict or ErrNotFound (keys): %v", err)
		}
		// Id 0 is refused before anything is sent.
		if err := cl.MemberRemove(ctx, 0); err == nil {
			t.Fatal("remove member 0: no error")
		}
	})

	t.Run("learner that never starts", func(t *testing.T) {
		ctx := testContext(t)
		peer := closedPort(t)
		m, err := cl.MemberAdd(ctx, client.MemberAddRequest{ID: 10, PeerURLs: []string{peer}, Learner: true})
		if err != nil || m.ID != 10 || !m.IsLearner || m.Started || !slices.Equal(m.PeerURLs, []string{peer}) {
			t.Fatalf("add learner 10 = %+v, %v", m, err)
		}
		list, err := cl.MemberList(ctx)
		if err != nil || len(list.Members) != 4 || !memberByID(t, list, 10).IsLearner {
			t.Fatalf("member list after adding a learner = %+v, %v", list, err)
		}
		_, err = cl.MemberPromote(ctx, 10)
		wantAPIError(t, "promote a learner that is not caught up", err, http.StatusConflict, "learner_not_ready",
			client.ErrLearnerNotReady, client.ErrConflict)
		_, err = cl.LeaderTransfer(ctx, 10)
		wantAPIError(t, "transfer leadership to a learner", err, http.StatusConflict, "not_voter", client.ErrNotVoter, client.ErrConflict)

		moved := closedPort(t)
		m, err = cl.MemberUpdate(ctx, 10, []string{moved})
		if err != nil || m.ID != 10 || !slices.Equal(m.PeerURLs, []string{moved}) {
			t.Fatalf("update learner 10 = %+v, %v", m, err)
		}
		if err := cl.MemberRemove(ctx, 10); err != nil {
			t.Fatalf("remove learner 10: %v", err)
		}
		list, err = cl.MemberList(ctx)
		if err != nil || len(list.Members) != 3 {
			t.Fatalf("member list after removing the learner = %+v, %v", list, err)
		}
		// Raft never lets an id come back.
		_, err = cl.MemberAdd(ctx, client.MemberAddRequest{ID: 10, PeerURLs: []string{closedPort(t)}, Learner: true})
		wantAPIError(t, "add a removed id", err, http.StatusGone, "member_removed", client.ErrMemberRemoved, client.ErrConflict)
		err = cl.MemberRemove(ctx, 10)
		if !errors.Is(err, client.ErrMemberRemoved) && !errors.Is(err, client.ErrMemberNotFound) {
			t.Fatalf("remove a removed member: %v", err)
		}

		// Without an id the cluster chooses one.
		m, err = cl.MemberAdd(ctx, client.MemberAddRequest{PeerURLs: []string{closedPort(t)}, Learner: true})
		if err != nil || m.ID == 0 || slices.Contains([]uint64{1, 2, 3, 10}, m.ID) || !m.IsLearner {
			t.Fatalf("add a learner without an id = %+v, %v", m, err)
		}
		if err := cl.MemberRemove(ctx, m.ID); err != nil {
			t.Fatalf("remove learner %d: %v", m.ID, err)
		}
	})

	t.Run("strict reconfiguration", func(t *testing.T) {
		// Two voters that never start still leave three started voters of
		// five, a quorum; a third would not (three of six).
		ctx := testContext(t)
		for _, id := range []uint64{31, 32} {
			if _, err := cl.MemberAdd(ctx, client.MemberAddRequest{ID: id, PeerURLs: []string{closedPort(t)}}); err != nil {
				t.Fatalf("add voter %d: %v", id, err)
			}
		}
		_, err := cl.MemberAdd(ctx, client.MemberAddRequest{ID: 33, PeerURLs: []string{closedPort(t)}})
		wantAPIError(t, "add a third unstarted voter", err, http.StatusConflict, "not_enough_started",
			client.ErrNotEnoughStarted, client.ErrConflict)
		for _, id := range []uint64{31, 32} {
			if err := cl.MemberRemove(ctx, id); err != nil {
				t.Fatalf("remove voter %d: %v", id, err)
			}
		}
	})

	t.Run("a member joins and is removed", func(t *testing.T) {
		ctx := testContext(t)
		id := c.AddMember(leader)
		c.StartJoining(id)
		cl4 := newClient(t, urls(c, id))
		waitStarted(t, c, cl4, 1, 2, 3, id)
		if err := cl.MemberRemove(ctx, id); err != nil {
			t.Fatalf("remove member %d: %v", id, err)
		}
		c.WaitStopped(id)
		list, err := cl.MemberList(ctx)
		if err != nil || len(list.Members) != 3 {
			t.Fatalf("member list after the removal = %+v, %v", list, err)
		}
	})
}

func TestLeaderTransfer(t *testing.T) {
	c, leader := startCluster(t, testcluster.Config{})
	follower := leader%3 + 1
	cl := newClient(t, urls(c, follower, leader))
	ctx := testContext(t)
	// Followers forward to the leader's published client URL.
	waitStarted(t, c, cl, 1, 2, 3)

	before, err := cl.StatusOf(ctx, c.ClientURL(leader))
	if err != nil {
		t.Fatal(err)
	}
	res, err := cl.LeaderTransfer(ctx, follower)
	if err != nil || res.Leader != follower || res.Term <= before.Term {
		t.Fatalf("transfer to %d (from %d, term %d) = %+v, %v", follower, leader, before.Term, res, err)
	}
	if got := c.WaitLeader(); got != follower {
		t.Fatalf("leader after the transfer: %d, want %d", got, follower)
	}
	mustPut(t, cl, "after/transfer", "v")

	res, err = cl.LeaderTransfer(ctx, 0)
	if err != nil || res.Leader == 0 || res.Leader == follower {
		t.Fatalf("transfer to any voter (from %d) = %+v, %v", follower, res, err)
	}
	// Transferring to the leader itself changes nothing, at once.
	quick, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	again, err := cl.LeaderTransfer(quick, res.Leader)
	if err != nil || again != res {
		t.Fatalf("transfer to the leader %d = %+v, %v; want %+v within a second", res.Leader, again, err, res)
	}

	_, err = cl.LeaderTransfer(ctx, 99)
	wantAPIError(t, "transfer to a stranger", err, http.StatusNotFound, "member_not_found", client.ErrMemberNotFound)
}

func TestStatus(t *testing.T) {
	c, leader := startCluster(t, testcluster.Config{})
	follower := leader%3 + 1
	cl := newClient(t, urls(c, follower, leader))
	ctx := testContext(t)
	rev := mustPut(t, cl, "status/k", "v").Revision
	c.WaitApplied(rev)
	waitStarted(t, c, cl, 1, 2, 3) // names are published once running

	// A fresh client: waitStarted may have moved cl to another endpoint.
	s, err := newClient(t, urls(c, follower, leader)).Status(ctx)
	if err != nil || s.ID != follower {
		t.Fatalf("status of the first endpoint = %+v, %v; want member %d's", s, err, follower)
	}
	var clusterID string
	for _, id := range c.Running() {
		s, err := cl.StatusOf(ctx, c.ClientURL(id)+"/")
		if err != nil {
			t.Fatalf("status of member %d: %v", id, err)
		}
		wantState := "follower"
		if id == leader {
			wantState = "leader"
		}
		if s.ID != id || s.Name == "" || s.ClusterID == "" || s.RaftState != wantState ||
			s.Leader != leader || s.Term == 0 || s.AppliedIndex < rev || s.CommitIndex < s.AppliedIndex ||
			s.Keys < 1 || s.Revision < rev || s.DataDirBytes <= 0 || s.WALFiles < 1 || s.UptimeSeconds <= 0 {
			t.Errorf("status of member %d = %+v", id, s)
		}
		if clusterID != "" && s.ClusterID != clusterID {
			t.Errorf("member %d says cluster %s, another said %s", id, s.ClusterID, clusterID)
		}
		clusterID = s.ClusterID
		if h, err := cl.HealthOf(ctx, c.ClientURL(id)); err != nil || !h.OK {
			t.Errorf("health of member %d = %+v, %v", id, h, err)
		}
		if h, err := cl.ReadyOf(ctx, c.ClientURL(id)); err != nil || !h.OK {
			t.Errorf("readiness of member %d = %+v, %v", id, h, err)
		}
	}

	// Every member holds the same store: the same hash at the same revision.
	var hash string
	for _, id := range c.Running() {
		h, err := cl.HashOf(ctx, c.ClientURL(id))
		if err != nil || h.StateHash == "" || h.HashRevision != rev {
			t.Fatalf("hash of member %d = %q at %d, %v; want one at revision %d", id, h.StateHash, h.HashRevision, err, rev)
		}
		if hash != "" && h.StateHash != hash {
			t.Errorf("member %d hashes %s, another %s", id, h.StateHash, hash)
		}
		hash = h.StateHash
	}

	down := closedPort(t)
	if _, err := cl.StatusOf(ctx, down); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("status of a closed port: %v", err)
	}
	if _, err := cl.HealthOf(ctx, down); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("health of a closed port: %v", err)
	}
	if _, err := cl.StatusOf(ctx, "127.0.0.1:1"); err == nil {
		t.Fatal("status of a URL without a scheme: no error")
	}

	// A member that lost its quorum is alive but neither ready nor healthy.
	for _, id := range c.Running() {
		if id != leader {
			if err := c.Stop(id); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.WaitFor("the lone member to be unready", func() error {
		h, err := cl.ReadyOf(ctx, c.ClientURL(leader))
		if err != nil || h.OK || h.Reason == "" {
			return fmt.Errorf("readiness = %+v, %v", h, err)
		}
		return nil
	})
	if h, err := cl.HealthOf(ctx, c.ClientURL(leader)); err != nil || h.OK || h.Reason == "" {
		t.Fatalf("health without a quorum = %+v, %v", h, err)
	}
	if s, err := cl.StatusOf(ctx, c.ClientURL(leader)); err != nil || s.ID != leader {
		t.Fatalf("status without a quorum = %+v, %v", s, err)
	}
}

// fakeServer answers the requests of a test with canned responses and
// records them.
type fakeServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []string // "METHOD path body"
}

// newFakeServer serves answer, which gets the number of requests so far
// (from 1); it stops when the test ends.
func newFakeServer(t *testing.T, answer func(n int, w http.ResponseWriter)) *fakeServer {
	t.Helper()
	f := &fakeServer{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.URL.Path+" "+string(b))
		n := len(f.requests)
		f.mu.Unlock()
		answer(n, w)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeServer) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

func answerJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "0")
	}
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// TestMemberChangeRetries checks that membership changes follow the rules of
// key writes: a 503 (not applied) moves on to the next endpoint, a 504
// (outcome unknown) is returned without sending the change again, while a
// listing, which changes nothing, is retried after a 504 too.
func TestMemberChangeRetries(t *testing.T) {
	const timeout = `{"error":"no answer in time","code":"timeout_outcome_unknown"}`
	const noLeader = `{"error":"no leader","code":"no_leader"}`
	const member = `{"id":4,"name":"","peer_urls":["http://127.0.0.1:42379"],"client_urls":[],"is_learner":true,"is_leader":false,"started":false}`

	t.Run("504 is not sent again", func(t *testing.T) {
		ctx := testContext(t)
		a := newFakeServer(t, func(_ int, w http.ResponseWriter) { answerJSON(w, http.StatusGatewayTimeout, timeout) })
		b := newFakeServer(t, func(_ int, w http.ResponseWriter) { answerJSON(w, http.StatusCreated, member) })
		cl := newClient(t, []string{a.URL, b.URL})
		calls := []struct {
			name string
			call func() error
		}{
			{"add", func() error {
				_, err := cl.MemberAdd(ctx, client.MemberAddRequest{ID: 4, PeerURLs: []string{"http://127.0.0.1:42379"}, Learner: true})
				return err
			}},
			{"promote", func() error { _, err := cl.MemberPromote(ctx, 4); return err }},
			{"update", func() error { _, err := cl.MemberUpdate(ctx, 4, []string{"http://127.0.0.1:42379"}); return err }},
			{"remove", func() error { return cl.MemberRemove(ctx, 4) }},
			{"transfer", func() error { _, err := cl.LeaderTransfer(ctx, 2); return err }},
		}
		for i, call := range calls {
			err := call.call()
			if !errors.Is(err, client.ErrOutcomeUnknown) || errors.Is(err, client.ErrConflict) {
				t.Errorf("%s answered 504: %v, want outcome unknown", call.name, err)
			}
			if n := len(a.got()); n != i+1 {
				t.Errorf("%s: the first endpoint got %d requests in all, want %d", call.name, n, i+1)
			}
		}
		if got := b.got(); len(got) != 0 {
			t.Fatalf("a change of unknown outcome was sent again: %q", got)
		}
		want := []string{
			`POST /v1/members {"id":4,"peer_urls":["http://127.0.0.1:42379"],"learner":true}`,
			`POST /v1/members/4/promote `,
			`PUT /v1/members/4 {"peer_urls":["http://127.0.0.1:42379"]}`,
			`DELETE /v1/members/4 `,
			`POST /v1/leader/transfer {"to":2}`,
		}
		if got := a.got(); !slices.Equal(got, want) {
			t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("503 moves on", func(t *testing.T) {
		ctx := testContext(t)
		a := newFakeServer(t, func(_ int, w http.ResponseWriter) { answerJSON(w, http.StatusServiceUnavailable, noLeader) })
		b := newFakeServer(t, func(_ int, w http.ResponseWriter) { answerJSON(w, http.StatusCreated, member) })
		cl := newClient(t, []string{a.URL, b.URL})
		m, err := cl.MemberAdd(ctx, client.MemberAddRequest{ID: 4, PeerURLs: []string{"http://127.0.0.1:42379"}, Learner: true})
		if err != nil || m.ID != 4 || !m.IsLearner || m.Progress != nil {
			t.Fatalf("add after a 503 = %+v, %v", m, err)
		}
		if len(a.got()) != 1 || len(b.got()) != 1 {
			t.Fatalf("requests: %q then %q, want one each", a.got(), b.got())
		}
		// Without an id, none is sent: the cluster chooses.
		if _, err := cl.MemberAdd(ctx, client.MemberAddRequest{PeerURLs: []string{"http://127.0.0.1:42379"}}); err != nil {
			t.Fatal(err)
		}
		if got := b.got(); got[1] != `POST /v1/members {"peer_urls":["http://127.0.0.1:42379"],"learner":false}` {
			t.Fatalf("add without an id sent %q", got[1])
		}
		// Leader transfer to any voter sends no target.
		c := newFakeServer(t, func(_ int, w http.ResponseWriter) { answerJSON(w, http.StatusOK, `{"leader":3,"term":9}`) })
		res, err := newClient(t, []string{c.URL}).LeaderTransfer(ctx, 0)
		if err != nil || res != (client.LeaderTransferResult{Leader: 3, Term: 9}) || c.got()[0] != "POST /v1/leader/transfer {}" {
			t.Fatalf("transfer to any voter = %+v, %v; sent %q", res, err, c.got())
		}
	})

	t.Run("listing is retried after 504", func(t *testing.T) {
		ctx := testContext(t)
		list := client.MemberListResult{Members: []client.Member{{ID: 1, Name: "raftkv-1", Started: true}}, Leader: 1, Term: 2, ClusterID: "abc"}
		body, _ := json.Marshal(list)
		a := newFakeServer(t, func(n int, w http.ResponseWriter) {
			if n == 1 {
				answerJSON(w, http.StatusGatewayTimeout, timeout)
				return
			}
			answerJSON(w, http.StatusOK, string(body))
		})
		got, err := newClient(t, []string{a.URL}).MemberList(ctx)
		if err != nil || got.Leader != 1 || got.Term != 2 || got.ClusterID != "abc" || len(got.Members) != 1 || got.Members[0].Name != "raftkv-1" {
			t.Fatalf("member list after a 504 = %+v, %v", got, err)
		}
	})

	t.Run("not ready is an answer", func(t *testing.T) {
		ctx := testContext(t)
		a := newFakeServer(t, func(_ int, w http.ResponseWriter) {
			answerJSON(w, http.StatusServiceUnavailable, `{"status":"unready","reason":"no leader","health":"false"}`)
		})
		cl := newClient(t, []string{a.URL})
		if h, err := cl.ReadyOf(ctx, a.URL); err != nil || h.OK || h.Reason != "no leader" {
			t.Fatalf("readiness = %+v, %v", h, err)
		}
		if h, err := cl.HealthOf(ctx, a.URL); err != nil || h.OK || h.Reason != "no leader" {
			t.Fatalf("health = %+v, %v", h, err)
		}
		if n := len(a.got()); n != 2 {
			t.Fatalf("%d requests, want one per check", n)
		}
	})
}
