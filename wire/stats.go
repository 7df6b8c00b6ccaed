package wire

// Stats is a node's recent client traffic, one sample per second, oldest
// first: the answer to GET /v1/stats (docs/API.md, "Recent traffic"), which
// the dashboard draws.
type Stats struct {
	IntervalSeconds int           `json:"interval_seconds"`
	Samples         []StatsSample `json:"samples"`
}

// StatsSample is one second of a node's client traffic.
type StatsSample struct {
	// Time is the second's start, in Unix seconds.
	Time int64 `json:"time"`
	// Reads are GET and HEAD of keys and listings; Writes are PUT and
	// DELETE of keys and ranges, and transactions; Errors are the reads
	// and writes answered with a 5xx status.
	Reads  uint64 `json:"reads"`
	Writes uint64 `json:"writes"`
	Errors uint64 `json:"errors"`
	// P50Ms and P99Ms are the latency of that second's reads and writes,
	// in milliseconds, to the upper bound of a histogram bucket (within a
	// factor of √2); 0 in a second without any.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
}
