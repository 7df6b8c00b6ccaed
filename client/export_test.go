package client

// StopRenewing stops renewing a session's lease without revoking it, as
// when its process dies: the lease expires after its TTL.
func StopRenewing(s *Session) { s.keep.Close() }

// Queued is how many requests wait in the batcher of endpoint i, behind
// the batches in flight.
func Queued(c *Client, i int) int {
	b := c.batchers[i]
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

// MaxFlights is how many batches one endpoint has in flight at once.
const MaxFlights = maxFlights
