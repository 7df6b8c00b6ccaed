package httpapi

import (
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/raftkv/raftkv/wire"
)

// Recent traffic for GET /v1/stats, which the dashboard draws: the last
// statsSeconds seconds of reads, writes, errors and latency, one slot per
// second in a ring. Requests record into the slot of their second, and a
// slot found holding an older second is cleared first, so the ring needs no
// goroutine to move it on. Prometheus has the same counts for the long run;
// this is what a page can show without one.

const (
	statsSeconds = 300
	// The latency buckets grow by √2 from 0.125 ms; the last, from 65 s
	// up, takes whatever is slower, beyond any request's timeout.
	statsBuckets  = 40
	statsFirstMs  = 0.125
	statsBucketLn = math.Ln2 / 2
)

type statsSecond struct {
	time                  int64
	reads, writes, errors uint64
	latency               [statsBuckets]uint32
}

type recentStats struct {
	mu sync.Mutex
	// One slot more than the samples: the current second, still being
	// counted, must not share a slot with the oldest one shown.
	ring [statsSeconds + 1]statsSecond
}

// slot is where second sec is counted; the caller holds mu.
func (rs *recentStats) slot(sec int64) *statsSecond {
	n := int64(len(rs.ring))
	return &rs.ring[(sec%n+n)%n]
}

// requestKind is what a request counts as in the recent traffic.
type requestKind uint8

const (
	otherRequest requestKind = iota
	readRequest
	writeRequest
)

// kindOf classes a request by its route and method.
func kindOf(route, method string) requestKind {
	switch route {
	case routeRootKey, routeV1KV, routeV1List:
		switch method {
		case http.MethodGet, http.MethodHead:
			return readRequest
		case http.MethodPut, http.MethodDelete:
			return writeRequest
		}
	case routeV1Txn:
		return writeRequest
	}
	return otherRequest
}

// record counts one answered request. Only reads and writes count: the
// errors are theirs, not those of the operations endpoints (a dashboard
// asking a member that is down for its status is answered 503 every
// second).
func (rs *recentStats) record(now time.Time, kind requestKind, status int, took time.Duration) {
	if kind == otherRequest {
		return
	}
	sec := now.Unix()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	slot := rs.slot(sec)
	if slot.time != sec {
		*slot = statsSecond{time: sec}
	}
	if status >= 500 {
		slot.errors++
	}
	if kind == readRequest {
		slot.reads++
	} else {
		slot.writes++
	}
	slot.latency[latencyBucket(took)]++
}

// latencyBucket is the first bucket whose upper bound is at least d.
func latencyBucket(d time.Duration) int {
	ms := float64(d) / float64(time.Millisecond)
	if ms <= statsFirstMs {
		return 0
	}
	b := int(math.Ceil(math.Log(ms/statsFirstMs) / statsBucketLn))
	return min(b, statsBuckets-1)
}

// bucketBoundMs is bucket b's upper bound in milliseconds.
func bucketBoundMs(b int) float64 {
	return math.Round(statsFirstMs*math.Exp(float64(b)*statsBucketLn)*1000) / 1000
}

// samples returns the statsSeconds whole seconds before now's, oldest
// first; a second without requests is all zeros.
func (rs *recentStats) samples(now time.Time) []wire.StatsSample {
	end := now.Unix() // the current second is not over: left out
	out := make([]wire.StatsSample, statsSeconds)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for i := range out {
		sec := end - statsSeconds + int64(i)
		out[i].Time = sec
		slot := rs.slot(sec)
		if slot.time != sec {
			continue
		}
		out[i].Reads, out[i].Writes, out[i].Errors = slot.reads, slot.writes, slot.errors
		out[i].P50Ms = quantileMs(&slot.latency, 0.50)
		out[i].P99Ms = quantileMs(&slot.latency, 0.99)
	}
	return out
}

// quantileMs is the upper bound of the bucket holding the q-quantile, 0
// for no requests.
func quantileMs(h *[statsBuckets]uint32, q float64) float64 {
	var total uint64
	for _, n := range h {
		total += uint64(n)
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for b, n := range h {
		seen += uint64(n)
		if seen >= rank {
			return bucketBoundMs(b)
		}
	}
	return bucketBoundMs(statsBuckets - 1)
}

// serveStats serves GET /v1/stats.
func (s *Server) serveStats(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := noParams(r); err != nil {
		return err
	}
	writeJSON(w, wire.Stats{IntervalSeconds: 1, Samples: s.metrics.recent.samples(time.Now())})
	return nil
}
