package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestBytesPerKey(t *testing.T) {
	tests := []struct {
		name string
		peak []uint64
		keys int64
		want float64
	}{
		// Three nodes of 250, 260 and 270 MiB hold 260 MiB on average.
		{"mean node over keys", []uint64{250 << 10, 260 << 10, 270 << 10}, 400000, 260 << 20 / 400000.0},
		{"one KiB per key", []uint64{1000, 1000, 1000}, 1000, 1024},
		{"no keys", []uint64{1000, 1000, 1000}, 0, 0},
		{"no servers", nil, 10, 0},
	}
	for _, tt := range tests {
		r := memoryRound{PeakRSSKiB: tt.peak, Keys: tt.keys}
		if got := r.bytesPerKey(); got != tt.want {
			t.Errorf("%s: bytesPerKey = %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := maxKiB([]uint64{3, 9, 4}); got != 9 {
		t.Errorf("maxKiB = %d, want 9", got)
	}
	if got := maxKiB(nil); got != 0 {
		t.Errorf("maxKiB(nil) = %d, want 0", got)
	}
}

// TestRenderMemoryReport checks that a system's row holds the medians over
// rounds, that every round is listed and that errors are flagged.
func TestRenderMemoryReport(t *testing.T) {
	const mib = 1024 // KiB
	round := func(system string, n int, puts, keys int64, errs int64, peak ...uint64) memoryRound {
		return memoryRound{
			System:      system,
			Round:       n,
			Puts:        cellResult{cell: cell{Workload: workloadPut, Clients: 64, ValueSize: 64}, Ops: puts, Errors: errs, OpsPerSec: float64(puts) / 10, FirstError: "boom"},
			StartRSSKiB: []uint64{20 * mib, 21 * mib, 22 * mib},
			PeakRSSKiB:  peak,
			RSSKiB:      []uint64{100 * mib, 100 * mib, 100 * mib},
			NodeKeys:    []int64{keys, keys, keys - 1},
			Keys:        keys,
		}
	}
	res := memoryResults{
		Date:     "2030-01-02 03:04 UTC",
		Command:  "cd bench && go run ./cmd/compare -memory",
		Settings: memorySettings{Rounds: 3, Duration: 2 * time.Minute, Keyspace: 1000000, ValueSize: 64, Clients: 64},
		Rounds: []memoryRound{
			// raftkv: means 250, 260, 300 MiB; largest 270, 280, 330.
			round("raftkv", 1, 400000, 379000, 0, 230*mib, 250*mib, 270*mib),
			round("etcd", 1, 320000, 318000, 0, 200*mib, 200*mib, 200*mib),
			round("etcd", 2, 300000, 300000, 0, 190*mib, 210*mib, 200*mib),
			round("raftkv", 2, 420000, 390000, 0, 240*mib, 260*mib, 280*mib),
			round("raftkv", 3, 380000, 370000, 0, 280*mib, 290*mib, 330*mib),
			round("etcd", 3, 340000, 330000, 9000, 205*mib, 205*mib, 205*mib),
		},
	}
	got := renderMemoryReport(res)
	for _, want := range []string{
		"Generated 2030-01-02 03:04 UTC.\n",
		"- Command: `cd bench && go run ./cmd/compare -memory`\n",
		"2m0s of closed-loop puts on the empty cluster by 64 clients",
		"keys drawn uniformly from 1,000,000 (`key-000000` … `key-999999`), values of 64 random printable bytes",
		// Medians: puts 400,000; puts/s 40,000; keys 379,000; largest
		// node 280 MiB; mean node 260 MiB; bytes per key of the rounds
		// 250 MiB/379,000 = 692, 260 MiB/390,000 = 699, 300 MiB/370,000 = 850.
		"| raftkv | 400,000 | 40,000 | 379,000 | 280 MiB | 260 MiB | 699 B |\n",
		// etcd: largest 200, 210, 205; means 200, 200, 205; bytes per
		// key 200 MiB/318,000 = 659, 699, 651.
		"| etcd | 320,000 | 32,000 ⚠ | 318,000 | 205 MiB | 200 MiB | 659 B |\n",
		"- raftkv round 2: 420,000 puts (42,000/s); 390,000 keys; peak RSS 240 / 260 / 280, RSS now 100 / 100 / 100, at start 20 / 21 / 22; 699 B/key\n",
		"- etcd round 3: 340,000 puts (34,000/s); 330,000 keys; peak RSS 205 / 205 / 205",
		"- etcd put ×64 round 3: 9000 of 349000 requests (2.58%), first: boom\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q; it is:\n%s", want, got)
		}
	}
	if strings.Index(got, "raftkv round 3") > strings.Index(got, "etcd round 1") {
		t.Errorf("rounds are not grouped by system, raftkv first:\n%s", got)
	}
}

func TestParseFlagsMemory(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want memorySettings
	}{
		{"full defaults", []string{"-memory"}, memorySettings{Rounds: 3, Duration: 120 * time.Second, Keyspace: 1000000, ValueSize: 64, Clients: 64}},
		{"quick", []string{"-memory", "-quick"}, memorySettings{Rounds: 1, Duration: 30 * time.Second, Keyspace: 1000000, ValueSize: 64, Clients: 64}},
		{"quick with overrides", []string{"-quick", "-memory", "-memory-duration", "20s", "-rounds", "2", "-memory-keys", "5000", "-memory-value", "128", "-memory-clients", "8"},
			memorySettings{Rounds: 2, Duration: 20 * time.Second, Keyspace: 5000, ValueSize: 128, Clients: 8}},
	}
	for _, tt := range tests {
		_, o, err := parseFlags(tt.args, io.Discard)
		switch {
		case err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case o.memory == nil:
			t.Errorf("%s: not in memory mode", tt.name)
		case *o.memory != tt.want:
			t.Errorf("%s: got %+v, want %+v", tt.name, *o.memory, tt.want)
		}
	}
	if _, o, err := parseFlags([]string{"-quick"}, io.Discard); err != nil || o.memory != nil {
		t.Errorf("without -memory: memory settings %+v, %v; want none", o.memory, err)
	}
	for _, bad := range [][]string{
		{"-memory", "-memory-duration", "0s"},
		{"-memory", "-memory-keys", "0"},
		{"-memory", "-memory-value", "-1"},
		{"-memory", "-memory-clients", "0"},
		{"-memory", "-rounds", "0"},
		{"-memory", "-clients", "8"},     // a matrix flag in memory mode
		{"-memory", "-duration", "1s"},   // likewise
		{"-memory-duration", "20s"},      // a memory flag without -memory
		{"-quick", "-memory-keys", "10"}, // likewise
	} {
		if _, _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want an error", bad)
		}
	}
}
