package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/raftkv/raftkv/raftnode"
)

// The operations API: /v1/members and /v1/leader/transfer (docs/API.md,
// "Operating the cluster"). A follower forwards these requests to the
// leader: only the leader knows how far each member has replicated (member
// listings carry it, promotion checks it), only it can hand over
// leadership, and its view of which members are connected is the one the
// quorum check of a membership change should use.

const (
	// forwardedHeader marks a request a follower forwarded to the leader,
	// with the follower's id. A marked request is served where it arrives,
	// never forwarded again, so leadership moving meanwhile cannot bounce
	// it around.
	forwardedHeader = "X-Raftkv-Forwarded"
	// forwardGrace is how much longer than its own request timeout a
	// follower waits for the leader, so that the leader's answer (a 504 of
	// its own included) reaches the client rather than the follower's
	// timeout.
	forwardGrace       = time.Second
	forwardDialTimeout = 2 * time.Second
	// maxMemberBodyBytes bounds the JSON body of member and leadership
	// requests.
	maxMemberBodyBytes = 64 << 10
)

// newForwarder returns the transport that carries forwarded requests,
// connecting over TLS with dialTLS when it is set.
func newForwarder(dialTLS func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	t := &http.Transport{
		// Members reach each other directly, never through an HTTP proxy
		// from the environment.
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: forwardDialTimeout}).DialContext,
		TLSHandshakeTimeout: forwardDialTimeout,
		// Forwarded requests are few (membership and leadership changes,
		// and a dashboard's status asks, one a second per member) and a
		// connection per request leaves nothing open behind a server that
		// stops.
		DisableKeepAlives: true,
	}
	if dialTLS != nil {
		// net/http ignores DialContext and TLSHandshakeTimeout for the
		// connections of DialTLSContext, so their two bounds are set
		// here, as one for connecting and the handshake together.
		t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, 2*forwardDialTimeout)
			defer cancel()
			return dialTLS(ctx, network, addr)
		}
	}
	return t
}

// memberJSON is a member as the API shows it.
type memberJSON struct {
	ID         uint64             `json:"id"`
	Name       string             `json:"name"`
	PeerURLs   []string           `json:"peer_urls"`
	ClientURLs []string           `json:"client_urls"`
	IsLearner  bool               `json:"is_learner"`
	IsLeader   bool               `json:"is_leader"`
	Started    bool               `json:"started"`
	Progress   *raftnode.Progress `json:"progress,omitempty"`
}

// membersResponse answers GET /v1/members.
type membersResponse struct {
	Members   []memberJSON `json:"members"`
	Leader    uint64       `json:"leader"`
	Term      uint64       `json:"term"`
	ClusterID string       `json:"cluster_id"`
}

// addMemberRequest is the body of POST /v1/members.
type addMemberRequest struct {
	ID       uint64   `json:"id"`
	PeerURLs []string `json:"peer_urls"`
	Learner  bool     `json:"learner"`
}

// updateMemberRequest is the body of PUT /v1/members/{id}.
type updateMemberRequest struct {
	PeerURLs []string `json:"peer_urls"`
}

// removeMemberResponse answers DELETE /v1/members/{id}.
type removeMemberResponse struct {
	Removed uint64 `json:"removed"`
}

// transferRequest is the optional body of POST /v1/leader/transfer.
type transferRequest struct {
	To uint64 `json:"to"`
}

// transferResponse answers POST /v1/leader/transfer.
type transferResponse struct {
	Leader uint64 `json:"leader"`
	Term   uint64 `json:"term"`
}

func toMemberJSON(m raftnode.Member, leader uint64, progress map[uint64]raftnode.Progress) memberJSON {
	out := memberJSON{
		ID:         m.ID,
		Name:       m.Name,
		PeerURLs:   m.PeerURLs,
		ClientURLs: m.ClientURLs,
		IsLearner:  m.IsLearner,
		IsLeader:   m.ID == leader,
		Started:    m.Started(),
	}
	// Empty lists, not null, for members that have not published yet.
	if out.PeerURLs == nil {
		out.PeerURLs = []string{}
	}
	if out.ClientURLs == nil {
		out.ClientURLs = []string{}
	}
	if pr, ok := progress[m.ID]; ok {
		pr.State = progressState(pr.State)
		out.Progress = &pr
	}
	return out
}

// progressState gives raft's progress state names ("StateReplicate") as the
// API's ("replicate").
func progressState(s string) string {
	return strings.ToLower(strings.TrimPrefix(s, "State"))
}

// memberRequest reads the id of a /v1/members/{id} request and, on a
// follower, forwards the request to the leader, reporting that it did.
func (s *Server) memberRequest(w http.ResponseWriter, r *http.Request, rawID string) (id uint64, forwarded bool, err error) {
	if id, err = parseV1MemberID(rawID); err != nil {
		return 0, false, err
	}
	forwarded, err = s.forwardToLeader(w, r, maxMemberBodyBytes)
	return id, forwarded, err
}

// serveMember serves PUT and DELETE /v1/members/{id}.
func (s *Server) serveMember(w http.ResponseWriter, r *http.Request, rawID string) error {
	id, forwarded, err := s.memberRequest(w, r, rawID)
	if forwarded || err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	if r.Method == http.MethodDelete {
		if err := s.cfg.Cluster.RemoveMember(ctx, id); err != nil {
			return err
		}
		writeJSON(w, removeMemberResponse{Removed: id})
		return nil
	}
	var req updateMemberRequest
	if err := decodeBody(w, r, &req, false, "invalid_member"); err != nil {
		return err
	}
	if len(req.PeerURLs) == 0 {
		return badRequest("invalid_member", `the body must be {"peer_urls": ["http://host:port", ...]}`)
	}
	m, err := s.cfg.Cluster.UpdateMember(ctx, id, req.PeerURLs)
	if err != nil {
		return err
	}
	s.writeMember(w, http.StatusOK, m)
	return nil
}

// servePromote serves POST /v1/members/{id}/promote.
func (s *Server) servePromote(w http.ResponseWriter, r *http.Request, rawID string) error {
	id, forwarded, err := s.memberRequest(w, r, rawID)
	if forwarded || err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	m, err := s.cfg.Cluster.PromoteMember(ctx, id)
	if err != nil {
		return err
	}
	s.writeMember(w, http.StatusOK, m)
	return nil
}

// serveMemberTable serves GET and POST /v1/members.
func (s *Server) serveMemberTable(w http.ResponseWriter, r *http.Request, _ string) error {
	if forwarded, err := s.forwardToLeader(w, r, maxMemberBodyBytes); forwarded || err != nil {
		return err
	}
	if r.Method != http.MethodPost {
		return s.listMembers(w)
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	return s.addMemberV1(ctx, w, r)
}

func (s *Server) listMembers(w http.ResponseWriter) error {
	// Progress is only known to the leader. A follower forwards the
	// request, so it gets here only when the request was forwarded to it
	// and leadership has moved since.
	progress := s.cfg.Cluster.Progress()
	if progress == nil {
		return fmt.Errorf("%w: leadership moved while the request was forwarded", raftnode.ErrNotLeader)
	}
	c := s.cfg.Cluster
	leader, term := c.Leader(), c.Term()
	members := c.Members()
	out := membersResponse{Members: make([]memberJSON, len(members)), Leader: leader, Term: term, ClusterID: raftnode.FormatID(c.ClusterID())}
	for i, m := range members {
		out.Members[i] = toMemberJSON(m, leader, progress)
	}
	writeJSON(w, out)
	return nil
}

func (s *Server) addMemberV1(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	var req addMemberRequest
	if err := decodeBody(w, r, &req, false, "invalid_member"); err != nil {
		return err
	}
	if len(req.PeerURLs) == 0 {
		return badRequest("invalid_member", `the body must be {"id": <optional>, "peer_urls": ["http://host:port", ...], "learner": <bool>}`)
	}
	m, err := s.addNewMember(ctx, req.ID, req.PeerURLs, req.Learner)
	if err != nil {
		return err
	}
	s.writeMember(w, http.StatusCreated, m)
	return nil
}

// addNewMember adds a member (id 0: a new id), refusing an id that is a member
// already. raftnode.Node.AddMember would take adding an existing learner as
// a voter for raft's promotion, which skips PromoteMember's check that the
// learner caught up and ignores the peer URLs given; adding is never
// promoting here.
func (s *Server) addNewMember(ctx context.Context, id uint64, peerURLs []string, learner bool) (raftnode.Member, error) {
	if id != 0 && slices.ContainsFunc(s.cfg.Cluster.Members(), func(m raftnode.Member) bool { return m.ID == id }) {
		return raftnode.Member{}, fmt.Errorf("%w: member %d exists (a learner is promoted, not added again)", raftnode.ErrMemberExists, id)
	}
	return s.cfg.Cluster.AddMember(ctx, id, peerURLs, learner)
}

// writeMember answers a membership change with the member as it now is.
func (s *Server) writeMember(w http.ResponseWriter, status int, m raftnode.Member) {
	s.setRaftHeaders(w.Header())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(toMemberJSON(m, s.cfg.Cluster.Leader(), s.cfg.Cluster.Progress()))
}

// serveLeaderTransfer serves POST /v1/leader/transfer.
func (s *Server) serveLeaderTransfer(w http.ResponseWriter, r *http.Request, _ string) error {
	if forwarded, err := s.forwardToLeader(w, r, maxMemberBodyBytes); forwarded || err != nil {
		return err
	}
	var req transferRequest
	if err := decodeBody(w, r, &req, true, "bad_body"); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	leader, err := s.cfg.Cluster.TransferLeadership(ctx, req.To)
	if err != nil {
		return err
	}
	// The node records a new term before it reports the new leader, so
	// this is the term the new leader leads in.
	s.setRaftHeaders(w.Header())
	writeJSON(w, transferResponse{Leader: leader, Term: s.cfg.Cluster.Term()})
	return nil
}

// decodeBody decodes a JSON request body strictly into v: unknown fields,
// fields named twice or in another case (see checkNames), trailing data and
// bodies over maxMemberBodyBytes are refused. An empty
// body is refused unless optional. code is the error code of a malformed
// body.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, optional bool, code string) error {
	return decodeBodyUpTo(w, r, v, maxMemberBodyBytes, optional, code)
}

// decodeBodyUpTo is decodeBody for bodies of up to limit bytes.
func decodeBodyUpTo(w http.ResponseWriter, r *http.Request, v any, limit int64, optional bool, code string) error {
	body, err := readBody(w, r, limit)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return badRequest(code, "the request body must be a JSON object")
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return badRequest(code, "the request body is not valid: "+jsonProblem(err))
	}
	if err := d.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return badRequest(code, "the request body must hold one JSON object and nothing after it")
	}
	if err := checkNames(body, reflect.TypeOf(v)); err != nil {
		return badRequest(code, "the request body is not valid: "+err.Error())
	}
	return nil
}

// jsonProblem says what is wrong with a JSON body in the API's terms: the
// decoder's own words name Go types ("Go struct field addMemberRequest.id
// of type uint64").
func jsonProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		want := "a " + typeErr.Type.Kind().String()
		switch typeErr.Type.Kind() {
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			want = "a positive integer"
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			want = "an integer"
		case reflect.Bool:
			want = "true or false"
		case reflect.Slice:
			want = "an array"
		case reflect.Struct, reflect.Map:
			want = "an object"
		}
		if typeErr.Field == "" {
			return fmt.Sprintf("got a JSON %s, want %s", typeErr.Value, want)
		}
		return fmt.Sprintf("field %s is a JSON %s, want %s", typeErr.Field, typeErr.Value, want)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("not JSON (at byte %d)", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends early"
	}
	// DisallowUnknownFields has no error type: `json: unknown field "x"`.
	return strings.TrimPrefix(err.Error(), "json: ")
}

// parseV1MemberID parses the {id} of /v1/members/{id}.
func parseV1MemberID(raw string) (uint64, error) {
	s, err := url.PathUnescape(raw)
	if err == nil {
		var id uint64
		if id, err = strconv.ParseUint(s, 0, 64); err == nil && id != 0 {
			return id, nil
		}
	}
	return 0, badRequest("invalid_member_id", fmt.Sprintf("member id %q must be a positive integer (0x hex accepted)", raw))
}

// forwardToLeader serves r on the leader when this node is a follower: it
// reports whether r was forwarded (and answered). It returns an error, and
// forwards nothing, when no leader can be named or the body is larger than
// maxBody, the limit of the route. A request that was forwarded to this node
// already is never forwarded again; it is served here, and what needs the
// leader fails with raftnode.ErrNotLeader.
func (s *Server) forwardToLeader(w http.ResponseWriter, r *http.Request, maxBody int64) (bool, error) {
	if s.cfg.Cluster.IsLeader() || r.Header.Get(forwardedHeader) != "" {
		return false, nil
	}
	target, err := s.leaderURL()
	if err != nil {
		return false, err
	}
	// The body is small; reading it first refuses an oversized one here,
	// instead of the leader cutting the forwarded request off mid-write.
	body, err := readBody(w, r, maxBody)
	if err != nil {
		return false, err
	}
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	s.forward(w, r, s.cfg.Cluster.Leader(), target)
	return true, nil
}

// leaderURL is the leader's client URL, where a follower forwards what
// needs the leader.
func (s *Server) leaderURL() (*url.URL, error) {
	leader := s.cfg.Cluster.Leader()
	if leader == 0 {
		return nil, fmt.Errorf("%w: the request needs the leader", raftnode.ErrNoLeader)
	}
	target, clientURL, _ := s.memberClientURL(leader)
	if target == nil {
		return nil, fmt.Errorf("%w: leader %d has published no usable client URL (%q) to forward the request to", raftnode.ErrNoLeader, leader, clientURL)
	}
	return target, nil
}

// memberClientURL is the first client URL member id published, parsed; nil
// when it published none that can be used (it never ran), with what it
// published. found is false when id is not a member.
func (s *Server) memberClientURL(id uint64) (target *url.URL, published string, found bool) {
	for _, m := range s.cfg.Cluster.Members() {
		if m.ID != id {
			continue
		}
		if len(m.ClientURLs) > 0 {
			published = m.ClientURLs[0]
		}
		if u, err := url.Parse(published); err == nil && u.Host != "" {
			return u, published, true
		}
		return nil, published, true
	}
	return nil, "", false
}

// forward proxies r to the leader's client API and relays its answer, with
// the leader's X-Raft-Leader and X-Raft-Term. When the leader cannot be
// reached the answer is 503 no_leader, unless the request had already gone
// out: then a change may or may not have been applied, and the answer is 504
// timeout_outcome_unknown, so that clients do not blindly repeat it.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, leader uint64, target *url.URL) {
	var sent, answered atomic.Bool
	trace := &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				sent.Store(true)
			}
		},
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Header.Set(forwardedHeader, strconv.FormatUint(s.cfg.Cluster.ID(), 10))
			pr.Out = pr.Out.WithContext(httptrace.WithClientTrace(pr.Out.Context(), trace))
		},
		Transport: s.forwarder,
		ModifyResponse: func(*http.Response) error {
			answered.Store(true)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			lg := s.cfg.Logger.With(zap.Uint64("leader", leader), zap.String("url", target.String()),
				zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
			if answered.Load() {
				lg.Warn("relaying the leader's answer failed")
				return // the status line is out; nothing more can be said
			}
			lg.Info("forwarding to the leader failed")
			s.setRaftHeaders(w.Header())
			if sent.Load() && r.Method != http.MethodGet && r.Method != http.MethodHead {
				writeError(w, &Error{Status: http.StatusGatewayTimeout, Code: "timeout_outcome_unknown",
					Message: fmt.Sprintf("the request was forwarded to leader %d at %s but no answer came (%v); it may or may not have been applied", leader, target, err)})
				return
			}
			writeError(w, &Error{Status: http.StatusServiceUnavailable, Code: "no_leader",
				Message: fmt.Sprintf("cannot reach leader %d at %s: %v", leader, target, err)})
		},
	}
	// The leader's headers describe the answer; drop this node's.
	w.Header().Del("X-Raft-Leader")
	w.Header().Del("X-Raft-Term")
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout+forwardGrace)
	defer cancel()
	proxy.ServeHTTP(w, r.WithContext(ctx))
}
