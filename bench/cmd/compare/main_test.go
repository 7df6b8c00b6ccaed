package main

import (
	"io"
	"slices"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		clients  []int
		values   []int
		rounds   int
		duration time.Duration
	}{
		{"full defaults", nil, []int{1, 16, 64, 256}, []int{256, 4096}, 3, 5 * time.Second},
		{"quick", []string{"-quick"}, []int{64}, []int{256}, 2, 3 * time.Second},
		{"quick with overrides", []string{"-quick", "-rounds", "1", "-duration", "2s", "-clients", "8,32"}, []int{8, 32}, []int{256}, 1, 2 * time.Second},
		{"override before quick", []string{"-values", "4096", "-quick"}, []int{64}, []int{4096}, 2, 3 * time.Second},
	}
	for _, tt := range tests {
		s, _, err := parseFlags(tt.args, io.Discard)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !slices.Equal(s.Workloads, allWorkloads()) || !slices.Equal(s.Clients, tt.clients) || !slices.Equal(s.Values, tt.values) || s.Rounds != tt.rounds || s.Duration != tt.duration {
			t.Errorf("%s: got %+v", tt.name, s)
		}
	}
	for _, bad := range [][]string{
		{"-workloads", "put,scan"},
		{"-clients", "0"},
		{"-values", "1,x"},
		{"-rounds", "0"},
		{"-duration", "-1s"},
		{"stray"},
	} {
		if _, _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want an error", bad)
		}
	}
}
