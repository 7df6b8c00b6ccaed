package client

// StopRenewing stops renewing a session's lease without revoking it, as
// when its process dies: the lease expires after its TTL.
func StopRenewing(s *Session) { s.keep.Close() }
