package client

// StopRenewing stops renewing a session's lease without revoking it, as
// when its process dies: the lease expires after its TTL.
func StopRenewing(s *Session) { s.keep.Close() }

// Queued is how many reads, or writes, wait in the batcher of endpoint i,
// behind the batches in flight.
func Queued(c *Client, i int, writes bool) int {
	b := c.reads[i]
	if writes {
		b = c.writes[i]
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

// ReadFlights and WriteFlights are how many batches of reads and of writes
// one endpoint has in flight at once.
const (
	ReadFlights  = readFlights
	WriteFlights = writeFlights
)
