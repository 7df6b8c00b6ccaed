package server_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap/zapcore"

	"github.com/raftkv/raftkv/internal/testcluster"
)

// BenchmarkPut measures acknowledged writes through the leader of a
// three-member cluster with real WALs (fsync on every Ready) over loopback,
// with 1 and with 64 concurrent clients. The ratio of the two shows how well
// concurrent writes share Readys and fsyncs.
func BenchmarkPut(b *testing.B) {
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			benchmarkRequests(b, clients, http.MethodPut, http.StatusNoContent)
		})
	}
}

// BenchmarkGet measures linearizable reads on a follower, which share
// ReadIndex rounds when concurrent.
func BenchmarkGet(b *testing.B) {
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			benchmarkRequests(b, clients, http.MethodGet, http.StatusOK)
		})
	}
}

func benchmarkRequests(b *testing.B, clients int, method string, want int) {
	c := testcluster.New(b, testcluster.Config{Size: 3, LogLevel: zapcore.WarnLevel, SnapshotCount: 10000})
	leader := c.WaitLeader()
	target := leader
	if method == http.MethodGet {
		target = leader%3 + 1 // a follower
		if _, err := c.Put(leader, "bench-0", "value"); err != nil {
			b.Fatal(err)
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	b.Cleanup(client.CloseIdleConnections)
	base := c.ClientURL(target)
	value := strings.Repeat("v", 128)
	var seq atomic.Uint64
	b.SetParallelism((clients + 1) / 2) // GOMAXPROCS is 2 on CI
	if clients == 1 {
		b.SetParallelism(1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := "bench-0"
			var body io.Reader
			if method == http.MethodPut {
				key = fmt.Sprintf("bench-%d", seq.Add(1)%1000)
				body = strings.NewReader(value)
			}
			req, err := http.NewRequest(method, base+"/"+key, body)
			if err != nil {
				b.Error(err)
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				b.Errorf("%s %s: status %d", method, key, resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
