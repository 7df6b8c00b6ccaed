package wire

// LeaseGrantRequest is the body of POST /v1/leases: a TTL in milliseconds
// (raised to the server's minimum) and, optionally, the id to give the
// lease (0 or absent: the server chooses).
type LeaseGrantRequest struct {
	TTLMs int64  `json:"ttl_ms"`
	ID    uint64 `json:"id,omitempty"`
}

// Lease answers a grant and a keepalive: the lease and its TTL, which a
// keepalive has just restored.
type Lease struct {
	ID    uint64 `json:"id"`
	TTLMs int64  `json:"ttl_ms"`
}

// LeaseStatus answers GET /v1/leases/{id}: the lease, the time it has left
// as its leader counts it, and the keys attached to it (those the caller
// may read), in key order.
type LeaseStatus struct {
	ID          uint64 `json:"id"`
	TTLMs       int64  `json:"ttl_ms"`
	RemainingMs int64  `json:"remaining_ms"`
	// Keys are base64; with encoding=text the server sends strings
	// instead, which this type does not decode.
	Keys [][]byte `json:"keys"`
}

// LeaseList answers GET /v1/leases.
type LeaseList struct {
	Leases []Lease `json:"leases"`
}

// LeaseRevoked answers DELETE /v1/leases/{id}: the store revision after the
// revoke (the revoke's own when it deleted keys) and how many keys it
// deleted.
type LeaseRevoked struct {
	Revision uint64 `json:"revision"`
	Deleted  int    `json:"deleted"`
}

// Error is the body of every error answer, and the last line of a stream
// that ends in an error.
type Error struct {
	Error          string `json:"error"`
	Code           string `json:"code"`
	OldestRevision uint64 `json:"oldest_revision,omitempty"`
}
