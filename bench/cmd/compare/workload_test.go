package main

import "testing"

func TestKeyNames(t *testing.T) {
	tests := []struct {
		n           int
		first, last string
	}{
		{keyspace, "key-00000", "key-09999"},
		{100, "key-00000", "key-00099"},
		{1000000, "key-000000", "key-999999"},
		{1000001, "key-0000000", "key-1000000"},
	}
	for _, tt := range tests {
		k := keyNames(tt.n)
		if len(k) != tt.n || k[0] != tt.first || k[len(k)-1] != tt.last {
			t.Errorf("keyNames(%d): %d names, %q … %q; want %q … %q", tt.n, len(k), k[0], k[len(k)-1], tt.first, tt.last)
		}
	}
}
