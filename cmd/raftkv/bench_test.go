package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/internal/testcluster"
)

// TestBenchReportsThroughputAndFailures runs the load generator against a
// real one-member cluster: every request of a good run succeeds, and a run
// the server refuses says why.
func TestBenchReportsThroughputAndFailures(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 1})
	c.WaitLeader()
	run := func(f benchFlags) string {
		t.Helper()
		f.endpoints = c.ClientURL(1)
		if f.consistency == "" {
			f.consistency = "linearizable"
		}
		var out bytes.Buffer
		if err := runBench(context.Background(), &out, f); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}

	out := run(benchFlags{op: "put", clients: 4, requests: 40, keys: 10, valueSize: 16})
	if !strings.HasPrefix(out, "put: 40 ok, 0 failed") {
		t.Fatalf("a good put run printed %q", out)
	}
	out = run(benchFlags{op: "get", clients: 4, requests: 40, keys: 20})
	if !strings.HasPrefix(out, "get: 40 ok, 0 failed") {
		t.Fatalf("a get run (missing keys count as answered) printed %q", out)
	}
	// Values over the 1.5 MiB request limit are refused with 413.
	out = run(benchFlags{op: "put", clients: 2, requests: 3, keys: 1, valueSize: 2 << 20})
	if !strings.HasPrefix(out, "put: 0 ok, 3 failed") || !strings.Contains(out, "failed 3× status 413 request_too_large") {
		t.Fatalf("an oversized put run printed %q", out)
	}
}

// TestBenchRejectsBadFlags: a bad bench command line is a usage error (exit
// 2), as for every other command, and nothing is sent.
func TestBenchRejectsBadFlags(t *testing.T) {
	for _, f := range []benchFlags{
		{op: "put", clients: 0, requests: 1, keys: 1},
		{op: "scan", clients: 1, requests: 1, keys: 1},
	} {
		err := runBench(context.Background(), io.Discard, f)
		if code := exitCode(err); code != 2 {
			t.Errorf("bench %+v: %v, exit %d, want 2", f, err, code)
		}
	}
	// Through the command, against a port where nothing listens: any
	// request would fail differently.
	endpoint := closedEndpoint(t)
	for _, args := range [][]string{
		{"--cleanup", "--key-prefix", ""},
		{"--cleanup", "--key-prefix", "user"}, // would take user42 for its own
		{"--requests", "0"},
		{"--requests", "-1", "--duration", "1s"},
		{"--duration", "-1s"},
		{"-o", "yaml"},
		{"--op", "get", "--consistency", "eventual"},
		{"--no-such-flag"},
		{"extra-argument"},
	} {
		args = append([]string{"bench", "--endpoints", endpoint}, args...)
		_, err := runCommand(t, args...)
		if code := exitStatus(err); code != exitUsage {
			t.Errorf("raftkv %s: %v, exit %d, want %d", strings.Join(args, " "), err, code, exitUsage)
		}
	}
}

// TestBenchDuration: --duration bounds a run by time (with --requests left
// unset, by time only) and --requests by count, whichever comes first.
func TestBenchDuration(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 1})
	c.WaitLeader()
	bench := func(args ...string) benchJSON {
		t.Helper()
		args = append([]string{"bench", "--endpoints", c.ClientURL(1), "--clients", "2", "--keys", "5", "-o", "json"}, args...)
		out, err := runCommand(t, args...)
		if err != nil {
			t.Fatalf("raftkv %s: %v", strings.Join(args, " "), err)
		}
		var r benchJSON
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("raftkv %s printed %q: %v", strings.Join(args, " "), out, err)
		}
		return r
	}
	r := bench("--duration", "1s")
	if r.ElapsedSeconds < 1 || r.OK == 0 || r.Failed != 0 || r.Interrupted {
		t.Errorf("--duration 1s: %+v, want at least 1 s of successful requests", r)
	}
	if r := bench("--duration", "1m", "--requests", "7"); r.OK != 7 || r.Failed != 0 || r.ElapsedSeconds >= 60 {
		t.Errorf("--duration 1m --requests 7: %+v, want 7 requests", r)
	}
}

// TestBenchJSON checks that -o json prints one object with the documented
// fields and no others.
func TestBenchJSON(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 1})
	c.WaitLeader()
	out, err := runCommand(t, "bench", "--endpoints", c.ClientURL(1), "--requests", "20", "--clients", "2", "--keys", "5", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("bench -o json printed %q, want one line", out)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("bench -o json printed %q: %v", out, err)
	}
	want := []string{"clients", "elapsed_seconds", "failed", "failures", "interrupted", "latency_ms", "ok", "op", "requests_per_second"}
	if got := slices.Sorted(maps.Keys(doc)); !slices.Equal(got, want) {
		t.Errorf("bench -o json has the fields %q, want %q", got, want)
	}
	lat, _ := doc["latency_ms"].(map[string]any)
	if got := slices.Sorted(maps.Keys(lat)); !slices.Equal(got, []string{"max", "p50", "p90", "p99"}) {
		t.Errorf("latency_ms has the fields %q", got)
	}
	var r benchJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	l := r.LatencyMs
	if r.Op != "put" || r.Clients != 2 || r.OK != 20 || r.Failed != 0 || len(r.Failures) != 0 || r.RequestsPerSecond <= 0 ||
		l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.Max {
		t.Errorf("bench -o json printed %s", out)
	}
}

// TestBenchCleanup: --cleanup deletes the run's keys and nothing else, and
// refuses, before writing, a prefix that holds keys bench does not write.
func TestBenchCleanup(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 1})
	c.WaitLeader()
	kv, err := client.New([]string{c.ClientURL(1)})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	ctx := context.Background()
	keys := func(prefix string) []string {
		t.Helper()
		var out []string
		for k, err := range kv.ListAll(ctx, []byte(prefix), client.ListOptions{KeysOnly: true}) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(k.Key))
		}
		return out
	}
	for _, k := range []string{"t/bench", "t/bench-results", "t/other"} {
		if _, err := kv.Put(ctx, []byte(k), []byte("user data"), client.Condition{}); err != nil {
			t.Fatal(err)
		}
	}

	out, err := runCommand(t, "bench", "--endpoints", c.ClientURL(1), "--requests", "30", "--clients", "3", "--keys", "10",
		"--key-prefix", "t/bench/", "--cleanup")
	if err != nil || !strings.HasPrefix(out, "put: 30 ok, 0 failed") || !strings.HasSuffix(out, "cleanup: deleted 10 keys under \"t/bench/\"\n") {
		t.Fatalf("bench --cleanup: %v, printed %q", err, out)
	}
	if got := keys("t/"); !slices.Equal(got, []string{"t/bench", "t/bench-results", "t/other"}) {
		t.Errorf("after bench --cleanup the keys under t/ are %q", got)
	}

	// "t/bench-" also holds t/bench-results: deleting it would lose it.
	out, err = runCommand(t, "bench", "--endpoints", c.ClientURL(1), "--requests", "30", "--keys", "10",
		"--key-prefix", "t/bench-", "--cleanup")
	if !errors.Is(err, errNotBenchKey) || exitStatus(err) != exitError || out != "" {
		t.Fatalf("bench --cleanup over other data: %v (exit %d), printed %q", err, exitStatus(err), out)
	}
	if got := keys("t/"); !slices.Equal(got, []string{"t/bench", "t/bench-results", "t/other"}) {
		t.Errorf("after a refused bench --cleanup the keys under t/ are %q", got)
	}
}

// TestBenchInterrupt: the end of the context (a signal, for the command)
// ends the run early without failures; the report and --cleanup follow.
func TestBenchInterrupt(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 1})
	c.WaitLeader()
	// Long enough for --cleanup's check and some fsynced writes on a
	// loaded machine; the run is interrupted either way.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := runBench(ctx, &out, benchFlags{endpoints: c.ClientURL(1), op: "put", clients: 4, requests: 1 << 30, keys: 1 << 30,
		keyPrefix: "interrupted-", cleanup: true, output: "json"})
	if err != nil {
		t.Fatal(err)
	}
	var r benchJSON
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("printed %q: %v", out.String(), err)
	}
	if !r.Interrupted || r.OK == 0 || r.Failed != 0 || r.Deleted == nil || *r.Deleted != int64(r.OK) {
		t.Errorf("an interrupted run printed %s", out.String())
	}
	kv, err := client.New([]string{c.ClientURL(1)})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	page, err := kv.List(context.Background(), []byte("interrupted-"), client.ListOptions{KeysOnly: true})
	if err != nil || len(page.KVs) != 0 {
		t.Errorf("after the cleanup of an interrupted run: %v, %d keys left", err, len(page.KVs))
	}
}

// TestBenchProgress: with a progress writer, the run redraws one line with
// \r and clears it at the end.
func TestBenchProgress(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 1})
	c.WaitLeader()
	var progress bytes.Buffer
	err := runBench(context.Background(), io.Discard, benchFlags{endpoints: c.ClientURL(1), op: "put", clients: 2, duration: 500 * time.Millisecond,
		keys: 10, progress: &progress, progressEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	got := progress.String()
	line := regexp.MustCompile(`^\r\d+s elapsed, \d+ requests, \d+ ops/s, 0 errors, p99 [0-9.]+[µm]?s\x1b\[K$`)
	lines := strings.SplitAfter(strings.TrimSuffix(got, "\r\x1b[K"), "\x1b[K")
	if !strings.HasSuffix(got, "\r\x1b[K") || len(lines) == 0 || !line.MatchString(lines[0]) {
		t.Fatalf("progress: %q", got)
	}
}

func TestThreeDigits(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		0:                            0,
		999 * time.Nanosecond:        999 * time.Nanosecond,
		2182488 * time.Nanosecond:    2180 * time.Microsecond,
		39017000 * time.Nanosecond:   39 * time.Millisecond,
		1200013400 * time.Nanosecond: 1200 * time.Millisecond,
		1999600 * time.Microsecond:   2 * time.Second,
	} {
		if got := threeDigits(in); got != want {
			t.Errorf("threeDigits(%v) = %v, want %v", in, got, want)
		}
	}
}
