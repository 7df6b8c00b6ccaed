package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReplaceMarked(t *testing.T) {
	const region = "new table\n"
	const marked = beginMarker + "\n" + region + endMarker
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{
			name: "replaces between the markers and keeps the rest",
			doc:  "# Perf\n\nintro\n\n" + beginMarker + "\nold\nlines\n" + endMarker + "\n\noutro\n",
			want: "# Perf\n\nintro\n\n" + marked + "\n\noutro\n",
		},
		{
			name: "empty region between markers",
			doc:  "a\n" + beginMarker + "\n" + endMarker + "\nb\n",
			want: "a\n" + marked + "\nb\n",
		},
		{
			name: "no markers: appended after a blank line",
			doc:  "# Perf\n\nprose\n",
			want: "# Perf\n\nprose\n\n" + marked + "\n",
		},
		{
			name: "no markers and no final newline",
			doc:  "# Perf",
			want: "# Perf\n\n" + marked + "\n",
		},
		{
			name: "empty file",
			doc:  "",
			want: marked + "\n",
		},
	}
	for _, tt := range tests {
		got, err := replaceMarked(tt.doc, beginMarker, endMarker, region)
		if err != nil || got != tt.want {
			t.Errorf("%s:\ngot  %q, %v\nwant %q", tt.name, got, err, tt.want)
		}
	}

	for name, doc := range map[string]string{
		"begin only":     "x\n" + beginMarker + "\nold\n",
		"end only":       "x\n" + endMarker + "\n",
		"out of order":   endMarker + "\nold\n" + beginMarker + "\n",
		"two regions":    beginMarker + "\n" + endMarker + "\n" + beginMarker + "\n" + endMarker + "\n",
		"two begin, one": beginMarker + "\n" + beginMarker + "\n" + endMarker + "\n",
	} {
		if got, err := replaceMarked(doc, beginMarker, endMarker, region); err == nil {
			t.Errorf("%s: replaceMarked = %q, want an error", name, got)
		}
	}
}

func TestWriteReport(t *testing.T) {
	path := filepath.Join(t.TempDir(), "PERFORMANCE.md")
	if err := writeReport(path, beginMarker, endMarker, "first\n"); err != nil {
		t.Fatal(err)
	}
	want := newReportHead + beginMarker + "\nfirst\n" + endMarker + "\n"
	if b, _ := os.ReadFile(path); string(b) != want {
		t.Errorf("new report:\ngot  %q\nwant %q", b, want)
	}

	if err := os.WriteFile(path, []byte(strings.Replace(want, newReportHead, newReportHead+"Kept prose.\n\n", 1)+"\nMore prose.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeReport(path, beginMarker, endMarker, "second\n"); err != nil {
		t.Fatal(err)
	}
	want = newReportHead + "Kept prose.\n\n" + beginMarker + "\nsecond\n" + endMarker + "\n\nMore prose.\n"
	if b, _ := os.ReadFile(path); string(b) != want {
		t.Errorf("updated report:\ngot  %q\nwant %q", b, want)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("report dir holds %d entries, want the report alone", len(entries))
	}
}

// TestWriteReportTwoRegions checks that the memory report's markers and the
// comparison's share a file, each run replacing its own region alone.
func TestWriteReportTwoRegions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "PERFORMANCE.md")
	steps := []struct{ begin, end, region string }{
		{beginMarker, endMarker, "compare 1\n"},
		{memoryBeginMarker, memoryEndMarker, "memory 1\n"},
		{beginMarker, endMarker, "compare 2\n"},
		{memoryBeginMarker, memoryEndMarker, "memory 2\n"},
	}
	for _, s := range steps {
		if err := writeReport(path, s.begin, s.end, s.region); err != nil {
			t.Fatal(err)
		}
	}
	want := newReportHead +
		beginMarker + "\ncompare 2\n" + endMarker + "\n\n" +
		memoryBeginMarker + "\nmemory 2\n" + memoryEndMarker + "\n"
	if b, _ := os.ReadFile(path); string(b) != want {
		t.Errorf("report:\ngot  %q\nwant %q", b, want)
	}
	if _, err := replaceMarked(want+memoryEndMarker+"\n", memoryBeginMarker, memoryEndMarker, "x\n"); err == nil {
		t.Error("a second bench-memory:end was accepted")
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 12345: "12,345", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestEtcdMemberSpecRoundTrip(t *testing.T) {
	spec := etcdMemberSpec{
		name:           "etcd1",
		dir:            "/tmp/x/node1",
		peerURL:        "http://127.0.0.1:1",
		clientURL:      "http://127.0.0.1:2",
		initialCluster: "etcd1=http://127.0.0.1:1,etcd2=http://127.0.0.1:3",
	}
	got, err := parseEtcdMemberSpec(spec.String())
	if err != nil || got != spec {
		t.Errorf("parseEtcdMemberSpec(%q) = %+v, %v; want %+v", spec.String(), got, err, spec)
	}
	if _, err := parseEtcdMemberSpec("etcd1,/tmp"); err == nil {
		t.Error("a spec of two fields parsed")
	}
}

// TestRenderReport checks that a row holds the medians over rounds and that
// a round with too many errors is flagged.
func TestRenderReport(t *testing.T) {
	cl := cell{Workload: workloadPut, Clients: 64, ValueSize: 256}
	result := func(ops, p50, p99, cpu float64, errs int64) cellResult {
		return cellResult{cell: cl, Ops: 1000, Errors: errs, OpsPerSec: ops, P50Ms: p50, P99Ms: p99, CPUMicrosPerOp: cpu, ClientCPUMicrosPerOp: cpu / 4, FirstError: "boom"}
	}
	res := results{
		Settings: settings{Workloads: []string{workloadPut}, Clients: []int{64}, Values: []int{256}, Rounds: 3, Duration: time.Second, Warmup: time.Second, Keyspace: keyspace},
		Clusters: []clusterResult{
			{System: "raftkv", Round: 1, PeakRSSKiB: []uint64{1024, 2048, 3072}, Cells: []cellResult{result(3000, 1, 10, 300, 0)}},
			{System: "etcd", Round: 1, PeakRSSKiB: []uint64{1024, 1024, 1024}, Cells: []cellResult{result(2000, 2, 20, 200, 0)}},
			{System: "etcd", Round: 2, PeakRSSKiB: []uint64{1024, 1024, 1024}, Cells: []cellResult{result(4000, 4, 40, 400, 50)}},
			{System: "raftkv", Round: 2, PeakRSSKiB: []uint64{1024, 1024, 1024}, Cells: []cellResult{result(1000, 3, 30, 100, 0)}},
			{System: "raftkv", Round: 3, PeakRSSKiB: []uint64{1024, 1024, 1024}, Cells: []cellResult{result(2000, 2, 20, 200, 0)}},
			{System: "etcd", Round: 3, PeakRSSKiB: []uint64{1024, 1024, 1024}, Cells: []cellResult{result(1000, 1, 10, 100, 0)}},
		},
	}
	got := renderReport(res)
	for _, want := range []string{
		"| put | 64 | 2,000 | 2,000 ⚠ | 1.00 | 2.00 / 20.00 | 2.00 / 20.00 | 200 | 200 | 50 / 50 |\n",
		"- put, 64 clients: raftkv 3,000, 1,000, 2,000; etcd 2,000, 4,000, 1,000\n",
		"- etcd put ×64 round 2: 50 of 1050 requests (4.76%), first: boom\n",
		"- raftkv: 1 / 2 / 3; 1 / 1 / 1; 1 / 1 / 1\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q; it is:\n%s", want, got)
		}
	}
}
