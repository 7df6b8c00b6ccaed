package kvstore

import (
	"errors"
	"fmt"
)

// Errors returned by the store and by KV operations. The HTTP layer maps them
// to status codes with errors.Is. The texts of those a client can receive
// reach users as the message of an error response, so they say what
// happened and what to do, without this package's name.
var (
	// ErrKeyNotFound means the key does not exist.
	ErrKeyNotFound = errors.New("key not found")
	// ErrTimeout means a write was handed to raft but its result did not
	// arrive in time: it may or may not have been applied.
	ErrTimeout = errors.New("no result in time: the write may or may not have been applied; read the key before retrying")
	// ErrLeaderChanged means a write was handed to raft, a new leader took
	// over, and the write was not among what it committed first: like
	// ErrTimeout, it may or may not be applied later.
	ErrLeaderChanged = errors.New("the leader changed before the write was applied: it may or may not be applied later; read the key before retrying")
	// ErrReadTimeout means a linearizable read could not be served in time.
	ErrReadTimeout = errors.New("the read could not be confirmed with the leader in time; retry")
	// ErrBusy means the proposal queue stayed full until the request's
	// deadline; nothing was proposed.
	ErrBusy = errors.New("too many writes are waiting for raft; retry shortly")
	// ErrStopped means the store is shutting down.
	ErrStopped = errors.New("the node is shutting down; retry on another node")
	// ErrCorruptCommand means a log entry could not be decoded.
	ErrCorruptCommand = errors.New("corrupt command")
	// ErrNewerCommand means a log entry written by a newer raftkv, in a
	// command version this build does not know.
	ErrNewerCommand = errors.New("command written by a newer raftkv")
	// ErrCorruptSnapshot means a snapshot could not be decoded.
	ErrCorruptSnapshot = errors.New("corrupt snapshot")
	// ErrInvalidTxn means a transaction that no store applies; the error
	// is a *TxnError, whose Code says why.
	ErrInvalidTxn = errors.New("invalid transaction")
	// ErrLeaseNotFound means the lease does not exist: it was never
	// granted, or it was revoked or expired.
	ErrLeaseNotFound = errors.New("not found: it was never granted, or it expired or was revoked")
	// ErrLeaseExists means a grant asked for an id a lease already has.
	ErrLeaseExists = errors.New("the id is in use")
	// ErrInvalidLease means a grant's id or TTL is out of range.
	ErrInvalidLease = errors.New("invalid lease")
	// ErrNotLeader means a lease's time is kept by the leader, and this
	// member is not it, or lost its leadership meanwhile.
	ErrNotLeader = errors.New("this member is not the leader, which keeps the leases' time; retry on the leader")
)

// ErrPreconditionFailed means a conditional write's condition did not hold;
// the error is a *PreconditionError.
var ErrPreconditionFailed = errors.New("precondition failed")

// PreconditionError describes a failed condition and the key's state when it
// was checked.
type PreconditionError struct {
	Condition Condition
	Exists    bool
	Current   Item // valid when Exists
}

func (e *PreconditionError) Error() string {
	if !e.Exists {
		return "precondition failed: the key does not exist"
	}
	return fmt.Sprintf("precondition failed: the key is at mod revision %d", e.Current.ModRevision)
}

// Unwrap makes errors.Is(err, ErrPreconditionFailed) hold.
func (e *PreconditionError) Unwrap() error { return ErrPreconditionFailed }
