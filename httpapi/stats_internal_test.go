package httpapi

import (
	"net/http"
	"testing"
	"time"
)

func TestRecentStatsRing(t *testing.T) {
	var rs recentStats
	t0 := time.Unix(1_000_000, 0)
	for i := range 100 {
		// 99 reads of 1 ms and one of 1 s, with the write of 2 ms below:
		// p50 is 1 ms, p99 (the 100th of 101) the write's 2 ms.
		took := time.Millisecond
		if i == 99 {
			took = time.Second
		}
		rs.record(t0.Add(100*time.Millisecond), readRequest, http.StatusOK, took)
	}
	rs.record(t0, writeRequest, http.StatusServiceUnavailable, 2*time.Millisecond)
	// Neither another request nor its error counts.
	rs.record(t0, otherRequest, http.StatusOK, time.Millisecond)
	rs.record(t0, otherRequest, http.StatusServiceUnavailable, time.Second)

	got := rs.samples(t0.Add(time.Second))
	last := got[len(got)-1]
	if last.Time != t0.Unix() || last.Reads != 100 || last.Writes != 1 || last.Errors != 1 {
		t.Fatalf("the second's sample = %+v, want 100 reads, 1 write, 1 error at %d", last, t0.Unix())
	}
	if last.P50Ms != 1 || last.P99Ms != 2 {
		t.Errorf("p50 %v ms, p99 %v ms; want 1 and 2 (bucket bounds)", last.P50Ms, last.P99Ms)
	}
	if got[0].Time != t0.Unix()-statsSeconds+1 {
		t.Errorf("the first sample is at %d, want %d", got[0].Time, t0.Unix()-statsSeconds+1)
	}

	// While a new second is counted, the oldest one shown keeps its
	// counts.
	rs.record(t0.Add(statsSeconds*time.Second), readRequest, http.StatusOK, time.Millisecond)
	got = rs.samples(t0.Add(statsSeconds * time.Second))
	if first := got[0]; first.Time != t0.Unix() || first.Reads != 100 {
		t.Fatalf("the oldest sample = %+v while the current second is counted, want the 100 reads at %d", first, t0.Unix())
	}

	// The same slot, a ring later, starts from zero.
	later := t0.Add((statsSeconds + 1) * time.Second)
	rs.record(later, writeRequest, http.StatusOK, 3*time.Millisecond)
	got = rs.samples(later.Add(time.Second))
	last = got[len(got)-1]
	if last.Reads != 0 || last.Writes != 1 || last.Errors != 0 || last.P99Ms < 3 || last.P99Ms > 4.5 {
		t.Errorf("a reused slot = %+v, want only the new write", last)
	}
	for _, s := range got[:len(got)-1] {
		if s.Time != t0.Unix()+statsSeconds && s.Reads+s.Writes+s.Errors != 0 {
			t.Errorf("sample %+v: an old second shows through", s)
		}
	}
}

func TestLatencyBuckets(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int
	}{{0, 0}, {100 * time.Microsecond, 0}, {125 * time.Microsecond, 0}, {126 * time.Microsecond, 1},
		{250 * time.Microsecond, 2}, {time.Hour, statsBuckets - 1}} {
		if got := latencyBucket(c.d); got != c.want {
			t.Errorf("latencyBucket(%v) = %d, want %d", c.d, got, c.want)
		}
		if b := latencyBucket(c.d); c.d < time.Minute && bucketBoundMs(b) < float64(c.d)/1e6 {
			t.Errorf("%v lands in bucket %d, whose bound %v ms is below it", c.d, b, bucketBoundMs(b))
		}
	}
}

// BenchmarkRecentStatsRecord is the cost every read and write pays for the
// dashboard's charts, from every core at once.
func BenchmarkRecentStatsRecord(b *testing.B) {
	var rs recentStats
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rs.record(time.Now(), readRequest, http.StatusOK, time.Millisecond)
		}
	})
}
