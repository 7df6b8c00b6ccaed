package main

import (
	"strings"
	"testing"
	"time"
)

// TestClientLimitsCheck: caps left at zero are derived from the open file
// limit, leaving fileReserve for the node's own files; caps the limit
// cannot hold are refused with the flag named.
func TestClientLimitsCheck(t *testing.T) {
	valid := clientLimits{maxConcurrentRequests: 256, idleTimeout: time.Minute, bodyTimeout: time.Second, writeTimeout: time.Second}
	for _, tc := range []struct {
		name      string
		nofile    uint64
		set       func(*clientLimits)
		wantConns int
		wantWatch int
		wantErr   string
	}{
		{name: "large limit: the defaults", nofile: 1 << 20, wantConns: 10000, wantWatch: 1024},
		{name: "small limit: derived below it", nofile: 1024, wantConns: 1024 - fileReserve, wantWatch: (1024 - fileReserve) / 4},
		{name: "explicit caps that fit", nofile: 4096, set: func(l *clientLimits) { l.maxConnections, l.maxWatchers = 3000, 2000 }, wantConns: 3000, wantWatch: 2000},
		{name: "connections over the limit", nofile: 1024, set: func(l *clientLimits) { l.maxConnections = 1000 }, wantErr: "--max-connections 1000 does not fit the open file limit 1024"},
		{name: "watchers over connections", nofile: 4096, set: func(l *clientLimits) { l.maxConnections, l.maxWatchers = 100, 100 }, wantErr: "--max-watchers 100 must be below --max-connections 100"},
		{name: "limit too low", nofile: 300, wantErr: "the open file limit is 300"},
		{name: "no requests", nofile: 4096, set: func(l *clientLimits) { l.maxConcurrentRequests = 0 }, wantErr: "--max-concurrent-requests 0 must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := valid
			if tc.set != nil {
				tc.set(&l)
			}
			err := l.check(tc.nofile)
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
				}
			case err != nil:
				t.Fatalf("refused: %v", err)
			case l.maxConnections != tc.wantConns || l.maxWatchers != tc.wantWatch:
				t.Fatalf("connections %d, watchers %d; want %d, %d", l.maxConnections, l.maxWatchers, tc.wantConns, tc.wantWatch)
			}
		})
	}
}
