package kvstore

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/raftkv/raftkv/raftnode"
)

// TestMetrics applies commits to a KV with a registry and checks its gauges,
// the lagged-watcher counter and the apply histogram.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	commitC := make(chan raftnode.Commit)
	kv := New(Config{Store: NewStore(), MemberID: 1, CommitC: commitC, WatchBuffer: 1, Metrics: reg})
	defer func() {
		close(commitC)
		<-kv.Done()
	}()
	// A buffer of one change: the second change it does not read closes it.
	w, err := kv.Watch([]byte("k"), true, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i, cmd := range []Command{
		{Op: OpPut, Key: []byte("k1"), Value: []byte("v")},
		{Op: OpPut, Key: []byte("k2"), Value: []byte("v")},
		{Op: OpLeaseGrant, TTL: 5000},
		{Op: OpPut, Key: []byte("k3"), Value: []byte("v")},
	} {
		index := uint64(i + 1)
		cmd.Origin, cmd.ID = 2, index
		done := make(chan struct{})
		commitC <- raftnode.Commit{Entries: []raftnode.Entry{{Index: index, Data: cmd.Marshal()}}, Index: index, Done: done}
		<-done
	}
	got := gather(t, reg)
	for name, want := range map[string]float64{
		"raftkv_keys": 3, "raftkv_revision": 4, "raftkv_watchers": 0, "raftkv_watchers_lagged_total": 1,
		"raftkv_apply_duration_seconds": 4, // observations: one per commit
		"raftkv_leases":                 1, "raftkv_leases_expired_total": 0,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
}

// gather returns the value of every unlabelled metric in reg: a gauge's or
// counter's value, a histogram's sample count.
func gather(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetHelp() == "" {
			t.Errorf("%s has no help", mf.GetName())
		}
		m := mf.GetMetric()[0]
		switch {
		case m.GetGauge() != nil:
			out[mf.GetName()] = m.GetGauge().GetValue()
		case m.GetCounter() != nil:
			out[mf.GetName()] = m.GetCounter().GetValue()
		case m.GetHistogram() != nil:
			out[mf.GetName()] = float64(m.GetHistogram().GetSampleCount())
		}
	}
	return out
}

// TestMetricsUnregistered checks that a KV without a registerer works and a
// second KV on the same registerer keeps running without its metrics.
func TestMetricsUnregistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	for range 2 {
		commitC := make(chan raftnode.Commit)
		kv := New(Config{Store: NewStore(), MemberID: 1, CommitC: commitC, Metrics: reg})
		cmd := Command{Op: OpPut, Key: []byte("k"), Value: []byte("v")}
		done := make(chan struct{})
		commitC <- raftnode.Commit{Entries: []raftnode.Entry{{Index: 1, Data: cmd.Marshal()}}, Index: 1, Done: done}
		<-done
		close(commitC)
		<-kv.Done()
	}
	commitC := make(chan raftnode.Commit)
	kv := New(Config{Store: NewStore(), CommitC: commitC})
	close(commitC)
	<-kv.Done()
}
