package client

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Errors the client returns, alone or wrapped; compare them with errors.Is.
// A response with an error status is an *APIError (or one of the more
// specific types below, which unwrap to one), and errors.Is matches it
// against the sentinels that describe it.
var (
	// ErrNotFound means the key does not exist (404 key_not_found).
	ErrNotFound = errors.New("key not found")
	// ErrUnavailable means the request was not applied: every endpoint
	// tried was unreachable or answered 503 (or 504 read_timeout for a
	// read). Retrying later is safe.
	ErrUnavailable = errors.New("cluster unavailable")
	// ErrOutcomeUnknown means a write reached a server but its result did
	// not come back (504 timeout_outcome_unknown, or the connection broke or
	// the context ended after the request was sent): it may or may not have
	// been applied. The client never retries such a write by itself.
	ErrOutcomeUnknown = errors.New("outcome unknown")
	// ErrUnauthenticated means the cluster has access control on and the
	// client sent no credentials, or ones it does not accept (401).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied means the credentials are good but do not allow
	// the request (403). Nothing changed.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrClosed is returned by Watcher.Next after Close.
	ErrClosed = errors.New("watcher closed")
	// ErrLeaseNotFound means the lease does not exist: never granted,
	// revoked, or expired (404 lease_not_found).
	ErrLeaseNotFound = errors.New("lease not found")
	// ErrLeaseLost means a KeepAlive could no longer keep its lease: the
	// lease expired or was revoked, or no renewal succeeded within its TTL.
	// Whatever the lease held (keys, a lock, leadership) must be taken as
	// gone.
	ErrLeaseLost = errors.New("lease lost")
)

// APIError is an error response of the server: its HTTP status and the
// code and message of its JSON body. Code is empty when the body was not
// raftkv's JSON (a proxy's error page, say); Message then holds the body.
// Status is 0 for the final error event of a watch stream that could not be
// resumed.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	if e.Status == 0 { // an error event that ended a watch
		return fmt.Sprintf("%s (%s)", e.Message, e.Code)
	}
	if e.Code == "" {
		if e.Message == "" {
			return fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
		}
		// Not raftkv's answer (a proxy's error page, say): its first line
		// is enough to tell what answered, and the error stays one line.
		msg, rest, cut := strings.Cut(e.Message, "\n")
		if cut = cut && strings.TrimSpace(rest) != ""; cut || len(msg) > maxErrorLine {
			msg = strings.ToValidUTF8(msg[:min(len(msg), maxErrorLine)], "") + " ..."
		}
		return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), msg)
	}
	return fmt.Sprintf("%s (%d %s)", e.Message, e.Status, e.Code)
}

// maxErrorLine bounds how much of a foreign error body Error shows.
const maxErrorLine = 200

// Is reports whether the response means one of the package's sentinels.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound && e.Code == "key_not_found"
	case ErrLeaseNotFound:
		return e.Status == http.StatusNotFound && e.Code == "lease_not_found"
	case ErrUnavailable:
		return e.Status == http.StatusServiceUnavailable ||
			(e.Status == http.StatusGatewayTimeout && e.Code == "read_timeout")
	case ErrOutcomeUnknown:
		return e.Status == http.StatusGatewayTimeout && e.Code != "read_timeout"
	case ErrUnauthenticated:
		return e.Status == http.StatusUnauthorized
	case ErrPermissionDenied:
		return e.Status == http.StatusForbidden
	}
	return false
}

// PreconditionFailedError is a 412: the condition of a conditional write
// did not hold and nothing changed.
type PreconditionFailedError struct {
	APIError
	// ModRevision is the key's current mod revision, from the response's
	// ETag; 0 when the key does not exist. IfModRevision(ModRevision) is
	// thus the condition that would have held.
	ModRevision uint64
}

func (e *PreconditionFailedError) Error() string {
	if e.ModRevision == 0 {
		return "precondition failed: the key does not exist"
	}
	return fmt.Sprintf("precondition failed: the key's mod revision is %d", e.ModRevision)
}

// Unwrap gives the underlying *APIError.
func (e *PreconditionFailedError) Unwrap() error { return &e.APIError }

// CompactedError is a 410: a watch asked for revisions older than the
// history of every member the client asked. List the keys again and watch
// from the listing's revision + 1.
type CompactedError struct {
	APIError
	// OldestRevision is the oldest revision a member could still watch
	// from when asked, the least of their answers. Histories move on with
	// new writes, and a member still applying the last ones holds a
	// revision the others no longer do, so a watch from it can be told
	// a later one.
	OldestRevision uint64
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("the requested revision is compacted; the oldest available is %d", e.OldestRevision)
}

// Unwrap gives the underlying *APIError.
func (e *CompactedError) Unwrap() error { return &e.APIError }

// EndpointError is a request to one endpoint that got no HTTP answer: the
// connection failed or broke. Err is the transport's error, without the
// request's method and URL that net/http would add.
type EndpointError struct {
	Endpoint string
	Err      error
}

func (e *EndpointError) Error() string { return e.Endpoint + ": " + e.Err.Error() }

// Unwrap gives the transport's error.
func (e *EndpointError) Unwrap() error { return e.Err }
