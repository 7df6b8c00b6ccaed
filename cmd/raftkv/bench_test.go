package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

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
// 2), as for every other command.
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
