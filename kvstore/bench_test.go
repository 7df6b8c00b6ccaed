package kvstore

import (
	"fmt"
	"runtime"
	"testing"
)

// BenchmarkListPrefix lists a 100-key prefix in a store of a million keys.
func BenchmarkListPrefix(b *testing.B) {
	s := NewStore()
	value := make([]byte, 64)
	for i := range 1_000_000 {
		s.Apply(uint64(i+1), &Command{Op: OpPut, Key: fmt.Appendf(nil, "dir%05d/key%03d", i/100, i%100), Value: value})
	}
	prefix := []byte("dir04242/")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		kvs, more, _ := s.List(prefix, nil, 1000)
		if len(kvs) != 100 || more {
			b.Fatalf("listed %d keys, more=%v", len(kvs), more)
		}
	}
}

// BenchmarkApplyPut measures the state machine's cost per write.
func BenchmarkApplyPut(b *testing.B) {
	s := NewStore()
	value := make([]byte, 128)
	keys := make([][]byte, 10000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		s.Apply(uint64(i), &Command{Op: OpPut, Key: keys[i%len(keys)], Value: value})
	}
}

// BenchmarkWatchers reports the memory one idle watcher costs in the hub and
// the cost of publishing a change with 10,000 watchers of other keys
// registered.
func BenchmarkWatchers(b *testing.B) {
	const n = 10000
	h := newHub(DefaultWatchHistory, DefaultWatchHistoryBytes, DefaultWatchBuffer)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ws := make([]*Watcher, n)
	for i := range ws {
		w, err := h.watch(fmt.Appendf(nil, "key-%d", i), false, 0)
		if err != nil {
			b.Fatal(err)
		}
		ws[i] = w
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perWatcher := float64(after.HeapAlloc-before.HeapAlloc) / n
	rev := uint64(0)
	b.ResetTimer()
	for b.Loop() {
		rev++
		h.publish([]Change{{Revision: rev, Events: []*Event{{Type: EventPut, Key: []byte("key-17")}}}})
		if _, err := ws[17].Next(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(perWatcher, "heap-B/watcher")
	for _, w := range ws {
		w.Close()
	}
}

// BenchmarkStoreMemory reports the heap a store of a million keys with
// 64-byte values holds per key (keys of 16 bytes, as a benchmark's
// "bench-" plus a number), and what writing a snapshot of it allocates on
// top, which a node pays every --snapshot-count writes.
func BenchmarkStoreMemory(b *testing.B) {
	const n = 1_000_000
	value := make([]byte, 64)
	for b.Loop() {
		var before, loaded, written runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := NewStore()
		for i := range n {
			s.Apply(uint64(i+1), &Command{Op: OpPut, Key: fmt.Appendf(nil, "bench-%010d", i), Value: value})
		}
		runtime.GC()
		runtime.ReadMemStats(&loaded)
		var size countWriter
		if err := s.Capture()(&size); err != nil {
			b.Fatal(err)
		}
		runtime.ReadMemStats(&written)
		b.ReportMetric(float64(loaded.HeapAlloc-before.HeapAlloc)/n, "heap-B/key")
		b.ReportMetric(float64(written.TotalAlloc-loaded.TotalAlloc)/n, "snapshot-alloc-B/key")
		b.ReportMetric(float64(size)/n, "snapshot-B/key")
		runtime.KeepAlive(s)
	}
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }
