package main

import (
	"slices"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name    string
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{"none", nil, 50, 0},
		{"one", []time.Duration{7}, 99, 7},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"p100 is the largest", hundred, 100, 100 * time.Millisecond},
		{"tiny p is the smallest", hundred, 0.001, time.Millisecond},
		// Nearest rank: p50 of four samples is the second, not a mean.
		{"p50 of four", []time.Duration{1, 2, 3, 4}, 50, 2},
		{"p99 of four", []time.Duration{1, 2, 3, 4}, 99, 4},
	}
	for _, tt := range tests {
		if got := percentile(tt.samples, tt.p); got != tt.want {
			t.Errorf("%s: percentile(p=%v) = %v, want %v", tt.name, tt.p, got, tt.want)
		}
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{5}, 5},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{9000, 100, 8000}, 8000},
	}
	for _, tt := range tests {
		in := slices.Clone(tt.xs)
		if got := median(tt.xs); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", in, got, tt.want)
		}
		if !slices.Equal(in, tt.xs) {
			t.Errorf("median reordered its input: %v, was %v", tt.xs, in)
		}
	}
}

func TestParseCPUTicks(t *testing.T) {
	// Fields after the name: state(3) ppid pgrp session tty_nr tpgid flags
	// minflt cminflt majflt cmajflt utime(14)=1234 stime(15)=567 cutime
	// cstime, which are not counted.
	const tail = " S 1 2 3 4 5 6 7 8 9 10 1234 567 89 10 20 0 1 0 100 200 300"
	tests := []struct {
		name string
		stat string
		want uint64
	}{
		{"plain name", "4242 (raftkv)" + tail, 1801},
		{"name with spaces and parentheses", "4242 (a) b (c d) ) x)" + tail, 1801},
		{"name that looks like fields", "4242 (1 2 3 4 5 6 7 8 9 10 11 12 13)" + tail, 1801},
	}
	for _, tt := range tests {
		got, err := parseCPUTicks(tt.stat)
		if err != nil || got != tt.want {
			t.Errorf("%s: parseCPUTicks = %d, %v; want %d", tt.name, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "4242 raftkv S 1 2", "4242 (raftkv) S 1 2 3", "4242 (x)" + " S 1 2 3 4 5 6 7 8 9 10 abc 567"} {
		if got, err := parseCPUTicks(bad); err == nil {
			t.Errorf("parseCPUTicks(%q) = %d, want an error", bad, got)
		}
	}
}

func TestCPUMicrosPerOp(t *testing.T) {
	// 150 ticks of 10 ms are 1.5 s of CPU; over 10,000 requests, 150 µs each.
	if got := cpuMicrosPerOp(150, 10000); got != 150 {
		t.Errorf("cpuMicrosPerOp(150, 10000) = %v, want 150", got)
	}
	if got := cpuMicrosPerOp(150, 0); got != 0 {
		t.Errorf("cpuMicrosPerOp with no requests = %v, want 0", got)
	}
}

func TestStatusKiB(t *testing.T) {
	const status = "Name:\traftkv\nVmPeak:\t 1300000 kB\nVmHWM:\t  251904 kB\nVmRSS:\t  240128 kB\nThreads:\t12\n"
	for field, want := range map[string]uint64{"VmHWM": 251904, "VmRSS": 240128} {
		if got, err := statusKiB(status, field); err != nil || got != want {
			t.Errorf("statusKiB(%s) = %d, %v; want %d", field, got, err, want)
		}
	}
	for _, field := range []string{"VmSwap", "Threads", "Name"} {
		if got, err := statusKiB(status, field); err == nil {
			t.Errorf("statusKiB(%s) = %d, want an error", field, got)
		}
	}
}
