package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/raftkv/raftkv/wire"

	"github.com/raftkv/raftkv/auth"
	"github.com/raftkv/raftkv/kvstore"
	"github.com/raftkv/raftkv/raftnode"
)

// Errors of the API itself: its own limits (limits.go), which answer 503
// busy, and what encoding=text cannot carry.
var (
	// ErrTooManyRequests means the node is serving as many requests as
	// --max-concurrent-requests allows.
	ErrTooManyRequests = errors.New("too many requests in progress on this node; retry shortly")
	// ErrTooManyWatchers means the node has as many watch streams open as
	// --max-watchers allows.
	ErrTooManyWatchers = errors.New("too many watchers on this node; retry shortly or watch through another node")
	// ErrTooManyBackups means the node is streaming as many backups as it
	// allows at once (maxBackups).
	ErrTooManyBackups = errors.New("too many backups in progress on this node; retry when one ends, or take it from another node")
	// ErrNotUTF8 means a response asked for with encoding=text holds a key
	// or value that is not valid UTF-8, which a JSON string cannot carry
	// unchanged (keyEncoding).
	ErrNotUTF8 = errors.New("encoding=text cannot carry a key or value that is not valid UTF-8")
	// ErrMemberUnreachable means another member did not answer a request
	// this node made of it for the caller (its status).
	ErrMemberUnreachable = errors.New("member unreachable")
)

// Error is a client-facing error: an HTTP status, a stable machine-readable
// code and a message. Handlers return one for bad input; errors from the
// layers below are mapped to one by toError.
type Error struct {
	Status  int
	Code    string
	Message string
	// ETag, when set, is sent as the ETag header: the key's current state
	// on a failed precondition.
	ETag string
	// OldestRevision, when set, is the oldest revision a watch can start
	// from, sent with a compacted error.
	OldestRevision uint64
}

func (e *Error) Error() string { return e.Message }

func badRequest(code, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Message: msg}
}

// methodNotAllowed answers 405 with the Allow header a client needs.
func methodNotAllowed(w http.ResponseWriter, msg, allow string) *Error {
	w.Header().Set("Allow", allow)
	return &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: msg + "; use " + allow}
}

// statuses maps the sentinel errors of kvstore and raftnode to responses, in
// one place. The first match wins.
var statuses = []struct {
	err    error
	status int
	code   string
}{
	{auth.ErrNoCredentials, http.StatusUnauthorized, "auth_required"},
	{auth.ErrBadCredentials, http.StatusUnauthorized, "invalid_credentials"},
	{kvstore.ErrKeyNotFound, http.StatusNotFound, "key_not_found"},
	{kvstore.ErrPreconditionFailed, http.StatusPreconditionFailed, "precondition_failed"},
	{kvstore.ErrCompacted, http.StatusGone, "compacted"},
	{kvstore.ErrTimeout, http.StatusGatewayTimeout, "timeout_outcome_unknown"},
	{kvstore.ErrLeaderChanged, http.StatusGatewayTimeout, "timeout_outcome_unknown"},
	{kvstore.ErrReadTimeout, http.StatusGatewayTimeout, "read_timeout"},
	{kvstore.ErrBusy, http.StatusServiceUnavailable, "busy"},
	{kvstore.ErrLeaseNotFound, http.StatusNotFound, "lease_not_found"},
	{kvstore.ErrLeaseExists, http.StatusConflict, "lease_exists"},
	{kvstore.ErrInvalidLease, http.StatusBadRequest, "invalid_lease"},
	{kvstore.ErrNotLeader, http.StatusServiceUnavailable, "not_leader"},
	{ErrTooManyRequests, http.StatusServiceUnavailable, "busy"},
	{ErrTooManyWatchers, http.StatusServiceUnavailable, "busy"},
	{ErrTooManyBackups, http.StatusServiceUnavailable, "busy"},
	{ErrNotUTF8, http.StatusBadRequest, "not_utf8"},
	{ErrMemberUnreachable, http.StatusServiceUnavailable, "member_unreachable"},
	{kvstore.ErrStopped, http.StatusServiceUnavailable, "stopping"},
	{raftnode.ErrStopped, http.StatusServiceUnavailable, "stopping"},
	{raftnode.ErrNoLeader, http.StatusServiceUnavailable, "no_leader"},
	{raftnode.ErrProposalDropped, http.StatusServiceUnavailable, "proposal_dropped"},
	{raftnode.ErrTimeout, http.StatusGatewayTimeout, "timeout_outcome_unknown"},
	{raftnode.ErrInvalidMemberID, http.StatusBadRequest, "invalid_member_id"},
	{raftnode.ErrInvalidPeerURL, http.StatusBadRequest, "invalid_peer_url"},
	{raftnode.ErrMemberExists, http.StatusConflict, "member_exists"},
	{raftnode.ErrPeerURLExists, http.StatusConflict, "peer_url_exists"},
	{raftnode.ErrLastVoter, http.StatusConflict, "last_voter"},
	{raftnode.ErrMemberNotFound, http.StatusNotFound, "member_not_found"},
	{raftnode.ErrMemberRemoved, http.StatusGone, "member_removed"},
	{raftnode.ErrNotLearner, http.StatusConflict, "not_learner"},
	{raftnode.ErrLearnerNotReady, http.StatusConflict, "learner_not_ready"},
	{raftnode.ErrNotEnoughStarted, http.StatusConflict, "not_enough_started"},
	{raftnode.ErrConfChangePending, http.StatusConflict, "conf_change_pending"},
	{raftnode.ErrNotVoter, http.StatusConflict, "not_voter"},
	{raftnode.ErrNotLeader, http.StatusServiceUnavailable, "not_leader"},
	{context.Canceled, http.StatusServiceUnavailable, "canceled"},
	{context.DeadlineExceeded, http.StatusGatewayTimeout, "timeout"},
}

// toError maps any error to a client-facing Error.
func toError(err error) *Error {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr
	}
	for _, s := range statuses {
		if errors.Is(err, s.err) {
			e := &Error{Status: s.status, Code: s.code, Message: err.Error()}
			var pe *kvstore.PreconditionError
			if errors.As(err, &pe) && pe.Exists {
				e.ETag = etag(pe.Current.ModRevision)
			}
			var ce *kvstore.CompactedError
			if errors.As(err, &ce) {
				e.OldestRevision = ce.Oldest
			}
			return e
		}
	}
	return &Error{Status: http.StatusInternalServerError, Code: "internal", Message: err.Error()}
}

// etag is the entity tag of a key at a mod revision.
func etag(modRevision uint64) string {
	return strconv.Quote(strconv.FormatUint(modRevision, 10))
}

// watchEnds maps the reasons a watcher ends to the code and message of the
// final error event of a watch stream; an empty message means the error's
// own, which names what it is about. The first match wins.
var watchEnds = []struct {
	err     error
	code    string
	message string
}{
	{kvstore.ErrWatcherLagged, "lagged", "watcher fell behind"},
	{ErrNotUTF8, "not_utf8", ""},
	{kvstore.ErrWatchResync, "resync", "the node replaced its state with the leader's snapshot; resume from resume_from on another member"},
	{kvstore.ErrStopped, "stopping", "the node is shutting down"},
	{raftnode.ErrStopped, "stopping", "the node is shutting down"},
}

// watchEnd returns the code and message of the final event of a watch that
// ended with err.
func watchEnd(err error) (code, message string) {
	for _, e := range watchEnds {
		switch {
		case !errors.Is(err, e.err):
		case e.message == "":
			return e.code, err.Error()
		default:
			return e.code, e.message
		}
	}
	return "internal", err.Error()
}

// writeError writes err as a JSON error response. Unavailability comes with
// Retry-After so well-behaved clients back off and try again.
func writeError(w http.ResponseWriter, err error) {
	e := toError(err)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	if e.Status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	if e.ETag != "" {
		h.Set("ETag", e.ETag)
	}
	if e.Status == http.StatusUnauthorized {
		// Both schemes the server takes (RFC 9110 §11.6.1); curl -u and
		// browsers answer the Basic one.
		h["Www-Authenticate"] = []string{`Basic realm="raftkv", charset="UTF-8"`, `Bearer realm="raftkv"`}
	}
	w.WriteHeader(e.Status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // messages say "<mod revision>", not "\u003cmod revision\u003e"
	_ = enc.Encode(wire.Error{Error: e.Message, Code: e.Code, OldestRevision: e.OldestRevision})
}
