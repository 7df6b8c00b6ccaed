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
