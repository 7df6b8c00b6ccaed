package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/raftkv/raftkv/wire"
)

// Errors of the operations API (docs/API.md, "Operating the cluster"). The
// error of a member or leadership call that the server refused matches, with
// errors.Is, the sentinel of its code and, but for ErrMemberNotFound,
// ErrConflict; errors.As gives the *APIError with the server's message (for
// learner_not_ready: how far behind the learner is). Nothing changed in the
// cluster when one of these is returned.
var (
	// ErrMemberNotFound: no member has the id (404 member_not_found).
	ErrMemberNotFound = errors.New("member not found")
	// ErrConflict matches every refusal below: the change conflicts with
	// the cluster's current state (any 409, and 410 member_removed).
	ErrConflict = errors.New("the change conflicts with the cluster's state")
	// ErrMemberExists: the id is already a member's (409 member_exists).
	ErrMemberExists = errors.New("member id in use")
	// ErrPeerURLExists: another member has the peer URL (409
	// peer_url_exists).
	ErrPeerURLExists = errors.New("peer URL in use")
	// ErrMemberRemoved: the id belonged to a removed member, and raft never
	// lets an id come back: use a new one (410 member_removed).
	ErrMemberRemoved = errors.New("member was removed")
	// ErrLearnerNotReady: the learner has not caught up with the leader yet
	// (409 learner_not_ready). Promoting it again later is safe.
	ErrLearnerNotReady = errors.New("learner not caught up")
	// ErrNotLearner: promoting a member that is already a voter (409
	// not_learner).
	ErrNotLearner = errors.New("member is not a learner")
	// ErrNotVoter: transferring leadership to a learner (409 not_voter).
	ErrNotVoter = errors.New("member is not a voter")
	// ErrNotEnoughStarted: the change would leave fewer started voters than
	// a quorum (409 not_enough_started), etcd's strict reconfiguration
	// check. Start the members that were added but never started first.
	ErrNotEnoughStarted = errors.New("not enough started members")
	// ErrConfChangePending: another configuration change is not applied yet
	// (409 conf_change_pending). Trying again later is safe.
	ErrConfChangePending = errors.New("configuration change pending")
	// ErrLastVoter: removing the last voter (409 last_voter).
	ErrLastVoter = errors.New("last voter")
)

// opCodes maps the codes of the operations API to their sentinels.
var opCodes = map[string]error{
	"member_not_found":    ErrMemberNotFound,
	"member_exists":       ErrMemberExists,
	"peer_url_exists":     ErrPeerURLExists,
	"member_removed":      ErrMemberRemoved,
	"learner_not_ready":   ErrLearnerNotReady,
	"not_learner":         ErrNotLearner,
	"not_voter":           ErrNotVoter,
	"not_enough_started":  ErrNotEnoughStarted,
	"conf_change_pending": ErrConfChangePending,
	"last_voter":          ErrLastVoter,
}

// opError is an error answer of the operations API: an *APIError that also
// matches the sentinels above.
type opError struct{ *APIError }

func (e *opError) Is(target error) bool {
	if target == ErrConflict {
		return e.Status == http.StatusConflict || (e.Status == http.StatusGone && e.Code == "member_removed")
	}
	s, ok := opCodes[e.Code]
	return ok && s == target
}

// Unwrap gives the underlying *APIError, which matches the package's other
// sentinels (ErrUnavailable, ErrOutcomeUnknown).
func (e *opError) Unwrap() error { return e.APIError }

// opErr makes an error response of an operations call match its sentinels.
func opErr(err error) error {
	if apiErr, ok := err.(*APIError); ok {
		return &opError{apiErr}
	}
	return err
}

// Member is a member of the cluster, as GET /v1/members describes it.
type Member struct {
	ID uint64 `json:"id"`
	// Name and ClientURLs are published by the member itself once it runs
	// (Started is true then); until then they are empty.
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls"`
	IsLearner  bool     `json:"is_learner"`
	IsLeader   bool     `json:"is_leader"`
	Started    bool     `json:"started"`
	// Progress is the leader's view of the member's replication; nil when
	// the answer did not come from the leader.
	Progress *Progress `json:"progress,omitempty"`
}

// Progress is how far the leader has replicated its log to a member.
type Progress struct {
	// Match is the highest log index known to be on the member.
	Match uint64 `json:"match"`
	// Next is the next index the leader will send.
	Next uint64 `json:"next"`
	// State is probe, replicate or snapshot.
	State string `json:"state"`
}

// MemberListResult is the member table with the leader's id and term.
type MemberListResult struct {
	Members []Member `json:"members"`
	// Leader is the leader's id, 0 when none is known.
	Leader    uint64 `json:"leader"`
	Term      uint64 `json:"term"`
	ClusterID string `json:"cluster_id"`
}

// MemberAddRequest describes a member to add.
type MemberAddRequest struct {
	// ID is the new member's id; 0 lets the cluster choose one.
	ID       uint64   `json:"id,omitempty"`
	PeerURLs []string `json:"peer_urls"`
	// Learner adds the member as a non-voting learner, to be promoted with
	// MemberPromote once it has caught up.
	Learner bool `json:"learner"`
}

// LeaderTransferResult is the leader after a transfer.
type LeaderTransferResult struct {
	Leader uint64 `json:"leader"`
	Term   uint64 `json:"term"`
}

// Status is one member's view of itself and of the cluster, GET /v1/status;
// HashOf sets StateHash and HashRevision. The type is the server's own
// (package wire).
type Status = wire.Status

// Health is a member's answer to a health check.
type Health struct {
	// OK is true when the member answered 200: it is healthy (or ready).
	OK bool
	// Reason says why it is not, as the member put it.
	Reason string
}

// MemberList returns the member table. Followers forward the request to the
// leader, so Progress is set when the cluster has one.
func (c *Client) MemberList(ctx context.Context) (MemberListResult, error) {
	resp, _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/members", idempotent: true})
	if err != nil {
		return MemberListResult{}, fmt.Errorf("list members: %w", opErr(err))
	}
	var r MemberListResult
	if err := decodeJSON(resp, &r); err != nil {
		return MemberListResult{}, fmt.Errorf("list members: %w", err)
	}
	return r, nil
}

// MemberAdd adds a member and returns it once the change is applied. Start
// the new node (raftkv serve --join) afterwards.
func (c *Client) MemberAdd(ctx context.Context, req MemberAddRequest) (Member, error) {
	m, err := c.memberChange(ctx, http.MethodPost, "/v1/members", req)
	if err != nil {
		return Member{}, fmt.Errorf("add member %s: %w", strings.Join(req.PeerURLs, ","), err)
	}
	return m, nil
}

// MemberPromote turns learner id into a voter. A learner that has not caught
// up is refused with ErrLearnerNotReady: try again later.
func (c *Client) MemberPromote(ctx context.Context, id uint64) (Member, error) {
	if id == 0 {
		return Member{}, errInvalidID("promote member")
	}
	m, err := c.memberChange(ctx, http.MethodPost, memberPath(id)+"/promote", nil)
	if err != nil {
		return Member{}, fmt.Errorf("promote member %d: %w", id, err)
	}
	return m, nil
}

// MemberUpdate replaces the peer URLs of member id.
func (c *Client) MemberUpdate(ctx context.Context, id uint64, peerURLs []string) (Member, error) {
	if id == 0 {
		return Member{}, errInvalidID("update member")
	}
	body := struct {
		PeerURLs []string `json:"peer_urls"`
	}{peerURLs}
	m, err := c.memberChange(ctx, http.MethodPut, memberPath(id), body)
	if err != nil {
		return Member{}, fmt.Errorf("update member %d: %w", id, err)
	}
	return m, nil
}

// MemberRemove removes member id; the removed node stops by itself. Removing
// the leader first moves leadership to another voter.
func (c *Client) MemberRemove(ctx context.Context, id uint64) error {
	if id == 0 {
		return errInvalidID("remove member")
	}
	resp, _, err := c.do(ctx, &request{method: http.MethodDelete, path: memberPath(id)})
	if err != nil {
		return fmt.Errorf("remove member %d: %w", id, opErr(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	return nil
}

// LeaderTransfer moves leadership to member to (0: the most caught-up voter)
// and returns once the new leader is in place. A transfer that did not
// complete in time is an error matching ErrOutcomeUnknown: leadership may or
// may not have moved, and the client does not ask again.
func (c *Client) LeaderTransfer(ctx context.Context, to uint64) (LeaderTransferResult, error) {
	body := struct {
		To uint64 `json:"to,omitempty"`
	}{to}
	b, err := json.Marshal(body)
	if err != nil {
		return LeaderTransferResult{}, fmt.Errorf("transfer leadership: %w", err)
	}
	resp, _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/leader/transfer", header: jsonHeader(), body: b})
	if err != nil {
		return LeaderTransferResult{}, fmt.Errorf("transfer leadership: %w", opErr(err))
	}
	var r LeaderTransferResult
	if err := decodeJSON(resp, &r); err != nil {
		return LeaderTransferResult{}, fmt.Errorf("transfer leadership: %w", err)
	}
	return r, nil
}

// Status returns the status of the first endpoint that answers (see its ID).
func (c *Client) Status(ctx context.Context) (Status, error) {
	resp, _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/status", idempotent: true})
	if err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	var s Status
	if err := decodeJSON(resp, &s); err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	return s, nil
}

// StatusOf asks the member at clientURL, which need not be one of the
// client's endpoints, for its status. It sends one request, without
// failover or retries: an unreachable member is an error matching
// ErrUnavailable.
func (c *Client) StatusOf(ctx context.Context, clientURL string) (Status, error) {
	return c.statusOf(ctx, clientURL, "/v1/status")
}

// HashOf is StatusOf with the member's state hash, which costs the member a
// pass over every key.
func (c *Client) HashOf(ctx context.Context, clientURL string) (Status, error) {
	return c.statusOf(ctx, clientURL, "/v1/status?hash=true")
}

func (c *Client) statusOf(ctx context.Context, clientURL, path string) (Status, error) {
	resp, err := c.getOnce(ctx, clientURL, path)
	if err == nil && resp.StatusCode/100 != 2 {
		err = readError(resp)
	}
	if err != nil {
		return Status{}, memberError("status", clientURL, err)
	}
	var s Status
	if err := decodeJSON(resp, &s); err != nil {
		return Status{}, memberError("status", clientURL, err)
	}
	return s, nil
}

// HealthOf asks the member at clientURL whether it is healthy (GET /health,
// etcd's check: it is ready and a linearizable read succeeds). An unhealthy
// member is not an error; one that cannot be asked is. Like StatusOf, it
// sends one request.
func (c *Client) HealthOf(ctx context.Context, clientURL string) (Health, error) {
	h, err := c.probe(ctx, clientURL, "/health")
	if err != nil {
		return Health{}, memberError("health", clientURL, err)
	}
	return h, nil
}

// ReadyOf asks the member at clientURL whether it is ready (GET /readyz: it
// knows a leader and has applied everything it knows committed). A member
// that is not ready is not an error; one that cannot be asked is. Like
// StatusOf, it sends one request.
func (c *Client) ReadyOf(ctx context.Context, clientURL string) (Health, error) {
	h, err := c.probe(ctx, clientURL, "/readyz")
	if err != nil {
		return Health{}, memberError("readiness", clientURL, err)
	}
	return h, nil
}

// probe asks a health endpoint: its status says yes (200) or no (503, with
// the reason in the JSON body).
func (c *Client) probe(ctx context.Context, clientURL, path string) (Health, error) {
	resp, err := c.getOnce(ctx, clientURL, path)
	if err != nil {
		return Health{}, err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return Health{}, readError(resp)
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if err := decodeJSON(resp, &body); err != nil {
		return Health{}, err
	}
	return Health{OK: resp.StatusCode == http.StatusOK, Reason: body.Reason}, nil
}

// getOnce sends one GET for path to the node at rawURL and returns its
// answer, whatever the status, or an error matching ErrUnavailable when the
// node could not be reached.
func (c *Client) getOnce(ctx context.Context, rawURL, path string) (*http.Response, error) {
	endpoint, err := normalizeEndpoint(rawURL)
	if err != nil {
		return nil, err
	}
	resp, _, err := c.sendOne(ctx, endpoint, &request{method: http.MethodGet, path: path, idempotent: true})
	switch {
	case err == nil:
		return resp, nil
	case ctx.Err() != nil:
		return nil, err
	}
	return nil, &unreachableError{err}
}

// unreachableError is a member that one request could not reach: it
// matches ErrUnavailable without saying "cluster unavailable", which would
// be wrong of one member.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string        { return e.err.Error() }
func (e *unreachableError) Unwrap() error        { return e.err }
func (e *unreachableError) Is(target error) bool { return target == ErrUnavailable }

// memberError says which member a one-member request was for, unless the
// error names its endpoint already.
func memberError(what, clientURL string, err error) error {
	var ee *EndpointError
	if errors.As(err, &ee) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s of %s: %w", what, clientURL, err)
}

// memberChange sends a membership change with body (nil: none) and decodes
// the member it answers. The request is not idempotent: a change whose
// outcome is unknown is never sent again.
func (c *Client) memberChange(ctx context.Context, method, path string, body any) (Member, error) {
	r := &request{method: method, path: path}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return Member{}, err
		}
		r.body, r.header = b, jsonHeader()
	}
	resp, _, err := c.do(ctx, r)
	if err != nil {
		return Member{}, opErr(err)
	}
	var m Member
	if err := decodeJSON(resp, &m); err != nil {
		return Member{}, err
	}
	return m, nil
}

// errInvalidID is the error of a call with member id 0, which is never
// sent.
func errInvalidID(op string) error {
	return fmt.Errorf("%s: the member id must be positive", op)
}

func memberPath(id uint64) string { return "/v1/members/" + strconv.FormatUint(id, 10) }

func jsonHeader() http.Header { return http.Header{"Content-Type": {"application/json"}} }

// normalizeEndpoint checks a client URL as New does and trims its final
// slash.
func normalizeEndpoint(e string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(e))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("endpoint %q: want http(s)://host:port", e)
	}
	return strings.TrimRight(u.String(), "/"), nil
}
