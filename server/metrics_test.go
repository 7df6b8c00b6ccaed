package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/raftkv/raftkv/internal/testcluster"
)

// raftkvFamilies are the raftkv_* metric families every member exports from
// its start (the request metrics appear with the first request, which the
// scrape itself is).
var raftkvFamilies = []string{
	"raftkv_proposals_committed_total", "raftkv_proposals_failed_total", "raftkv_proposals_pending",
	"raftkv_wal_fsync_duration_seconds", "raftkv_snapshot_duration_seconds", "raftkv_snapshot_size_bytes",
	"raftkv_leader_changes_total", "raftkv_snapshots_received_total",
	"raftkv_is_leader", "raftkv_has_leader", "raftkv_term",
	"raftkv_commit_index", "raftkv_applied_index", "raftkv_snapshot_index",
	"raftkv_apply_duration_seconds", "raftkv_keys", "raftkv_revision", "raftkv_watchers", "raftkv_watchers_lagged_total",
	"raftkv_leases", "raftkv_leases_expired_total",
	"raftkv_data_dir_bytes", "raftkv_disk_free_bytes", "raftkv_disk_size_bytes",
	"raftkv_http_requests_total", "raftkv_http_request_duration_seconds",
}

// TestMetrics scrapes GET /metrics of every member of a three-member cluster
// over HTTP, before and after a burst of writes. Every member has its own
// registry, so the members' values differ (one leader, requests counted where
// they were served) instead of colliding.
func TestMetrics(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3, SnapshotCount: 10, SnapshotCatchUpEntries: 5})
	leader := c.WaitLeader()
	var follower uint64
	for _, id := range c.Running() {
		if id != leader {
			follower = id
			break
		}
	}
	before := map[uint64]families{}
	for _, id := range c.Running() {
		before[id] = scrape(t, c.ClientURL(id))
	}

	const writes = 25
	var last uint64
	for i := range writes {
		rev, err := c.Put(leader, fmt.Sprintf("key-%02d", i), "value")
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		last = rev
	}
	if _, err := c.Get(leader, "key-00", testcluster.Linearizable); err != nil {
		t.Fatal(err)
	}
	c.WaitApplied(last)
	// Snapshots are written in the background; wait until every member
	// has finished one (SnapshotCount is 10).
	c.WaitFor("every member writes a snapshot", func() error {
		for _, id := range c.Running() {
			if n := scrape(t, c.ClientURL(id)).histogramCount(t, "raftkv_snapshot_duration_seconds", nil); n == 0 {
				return fmt.Errorf("member %d: no snapshot yet", id)
			}
		}
		return nil
	})
	after := map[uint64]families{}
	for _, id := range c.Running() {
		after[id] = scrape(t, c.ClientURL(id))
	}

	for _, id := range c.Running() {
		f := after[id]
		for _, name := range raftkvFamilies {
			mf, ok := f[name]
			if !ok {
				t.Errorf("member %d: no %s", id, name)
				continue
			}
			if mf.GetHelp() == "" {
				t.Errorf("member %d: %s has no help", id, name)
			}
		}
		if !f.hasPrefix("etcd_network_") {
			t.Errorf("member %d: no etcd_network_* metrics", id)
		}
		if _, ok := f["go_goroutines"]; !ok {
			t.Errorf("member %d: no Go runtime metrics", id)
		}
		if got := f.value(t, "raftkv_keys", nil); got != writes {
			t.Errorf("member %d: raftkv_keys = %v, want %d", id, got, writes)
		}
		if got := f.value(t, "raftkv_revision", nil); got != float64(last) {
			t.Errorf("member %d: raftkv_revision = %v, want %d", id, got, last)
		}
		if got := f.value(t, "raftkv_applied_index", nil); got < float64(last) {
			t.Errorf("member %d: raftkv_applied_index = %v, want >= %d", id, got, last)
		}
		// The data dir holds at least the snapshot just written, and the
		// disk it is on more than it holds.
		dir, free, size := f.value(t, "raftkv_data_dir_bytes", nil), f.value(t, "raftkv_disk_free_bytes", nil), f.value(t, "raftkv_disk_size_bytes", nil)
		if dir <= 0 || free <= 0 || size < free || size < dir {
			t.Errorf("member %d: data dir %v bytes, disk %v free of %v", id, dir, free, size)
		}
		if got := f.value(t, "raftkv_has_leader", nil); got != 1 {
			t.Errorf("member %d: raftkv_has_leader = %v", id, got)
		}
		// The term only grows, and the node is asked after the scrape.
		if got, now := f.value(t, "raftkv_term", nil), float64(c.Node(id).Term()); got == 0 || got > now {
			t.Errorf("member %d: raftkv_term = %v, node says %v", id, got, now)
		}
		// Every member applies every write, whoever proposed it.
		if d := f.value(t, "raftkv_proposals_committed_total", nil) - before[id].value(t, "raftkv_proposals_committed_total", nil); d < writes {
			t.Errorf("member %d: raftkv_proposals_committed_total grew by %v, want >= %d", id, d, writes)
		}
		if n := f.histogramCount(t, "raftkv_wal_fsync_duration_seconds", nil); n == 0 {
			t.Errorf("member %d: no WAL fsync observed", id)
		}
		if n := f.histogramCount(t, "raftkv_apply_duration_seconds", nil); n == 0 {
			t.Errorf("member %d: no apply observed", id)
		}
		// The earlier scrapes are counted by now.
		if got := f.value(t, "raftkv_http_requests_total", labels{"route": "metrics", "method": "GET", "code": "200"}); got < 2 {
			t.Errorf("member %d: %v scrapes of /metrics counted, want >= 2", id, got)
		}
	}

	putOK := labels{"route": "root_key", "method": "PUT", "code": "204"}
	getOK := labels{"route": "root_key", "method": "GET", "code": "200"}
	if d := after[leader].value(t, "raftkv_http_requests_total", putOK) - before[leader].value(t, "raftkv_http_requests_total", putOK); d != writes {
		t.Errorf("leader %d: PUT 204 requests grew by %v, want %d", leader, d, writes)
	}
	if d := after[leader].value(t, "raftkv_http_requests_total", getOK) - before[leader].value(t, "raftkv_http_requests_total", getOK); d != 1 {
		t.Errorf("leader %d: GET 200 requests grew by %v, want 1", leader, d)
	}
	if got := after[follower].value(t, "raftkv_http_requests_total", putOK); got != 0 {
		t.Errorf("follower %d counts %v PUTs it never served: registries are shared", follower, got)
	}
	if got := after[leader].histogramCount(t, "raftkv_http_request_duration_seconds", labels{"route": "root_key", "method": "PUT"}); got < writes {
		t.Errorf("leader %d: %d PUT latencies observed, want >= %d", leader, got, writes)
	}

	// Leadership is read at slightly different moments on each member, so
	// retry until the scrapes agree.
	c.WaitFor("exactly one member reports raftkv_is_leader 1", func() error {
		var leaders []uint64
		for _, id := range c.Running() {
			if scrape(t, c.ClientURL(id)).value(t, "raftkv_is_leader", nil) == 1 {
				leaders = append(leaders, id)
			}
		}
		if len(leaders) != 1 || !c.Node(leaders[0]).IsLeader() {
			return fmt.Errorf("members reporting leadership: %v", leaders)
		}
		return nil
	})
}

// TestMetricsMethods checks that /metrics answers GET and HEAD only.
func TestMetricsMethods(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 1})
	c.WaitLeader()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for _, tc := range []struct {
		method string
		status int
	}{
		{http.MethodGet, http.StatusOK},
		{http.MethodHead, http.StatusOK},
		{http.MethodPost, http.StatusMethodNotAllowed},
		{http.MethodPut, http.StatusMethodNotAllowed},
		{http.MethodDelete, http.StatusMethodNotAllowed},
	} {
		req, err := http.NewRequestWithContext(t.Context(), tc.method, c.ClientURL(1)+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s /metrics = %d, want %d", tc.method, resp.StatusCode, tc.status)
		}
		if tc.status == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /metrics: Allow = %q", tc.method, resp.Header.Get("Allow"))
		}
	}
}

// families are the parsed metric families of one scrape.
type families map[string]*dto.MetricFamily

// labels select one series of a family; nil selects a family's only series.
type labels map[string]string

// scrape fetches and parses GET /metrics; the text must parse cleanly.
func scrape(t *testing.T, clientURL string) families {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientURL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", clientURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: status %d", clientURL, resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("scrape %s: Content-Type %q", clientURL, ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: parse: %v", clientURL, err)
	}
	return mfs
}

func (f families) hasPrefix(prefix string) bool {
	for name := range f {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// series returns the series of name with the given labels, or nil.
func (f families) series(name string, want labels) *dto.Metric {
	for _, m := range f[name].GetMetric() {
		have := labels{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		if len(have) != len(want) {
			continue
		}
		match := true
		for k, v := range want {
			if have[k] != v {
				match = false
			}
		}
		if match {
			return m
		}
	}
	return nil
}

// value returns a counter's or gauge's value, 0 for a series not (yet)
// exported: a request counter appears with its first request.
func (f families) value(t *testing.T, name string, want labels) float64 {
	t.Helper()
	m := f.series(name, want)
	switch {
	case m == nil:
		return 0
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	t.Fatalf("%s is neither a counter nor a gauge", name)
	return 0
}

// histogramCount returns a histogram's observation count.
func (f families) histogramCount(t *testing.T, name string, want labels) uint64 {
	t.Helper()
	m := f.series(name, want)
	if m == nil {
		return 0
	}
	if m.GetHistogram() == nil {
		t.Fatalf("%s is not a histogram", name)
	}
	return m.GetHistogram().GetSampleCount()
}
