package raftnode

import (
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/raftkv/raftkv/internal/waltest"
)

// zeroBytes overwrites [from, to) of the file at path with zeros, as a write
// that never reached those sectors leaves them in a preallocated segment.
func zeroBytes(t *testing.T, path string, from, to int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, to-from), from); err != nil {
		t.Fatal(err)
	}
}

// TestInspectDataDirTornTail checks that InspectDataDir tells a torn final
// record, which a start cuts off without losing anything acknowledged, from
// damage: a torn record is a note at its frame's offset, and the same
// harm to a record that has another after it, or a flipped bit in the final
// record, is damage at that offset.
func TestInspectDataDirTornTail(t *testing.T) {
	lg := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	src := t.TempDir()
	writeTestWAL(t, lg, src, 6)
	all := waltest.Frames(t, walSegment(t, src))
	last, prev := all[len(all)-1], all[len(all)-2]
	tests := []struct {
		name   string
		limit  int64 // how much of the segment to copy; -1: all
		harm   func(t *testing.T, path string)
		at     int64
		damage bool
	}{
		{name: "cut inside the last record", limit: last.Off + (last.End-last.Off)/2, at: last.Off},
		{name: "cut inside the last length word", limit: last.Off + 3, at: last.Off},
		{
			name: "last record's sectors unwritten", limit: -1, at: last.Off,
			harm: func(t *testing.T, path string) { zeroBytes(t, path, last.Off+8, last.End) },
		},
		{
			name: "a record with another after it zeroed", limit: -1, at: prev.Off, damage: true,
			harm: func(t *testing.T, path string) { zeroBytes(t, path, prev.Off+8, prev.End) },
		},
		{
			name: "a bit flipped in the last record", limit: -1, at: last.Off, damage: true,
			harm: func(t *testing.T, path string) { waltest.FlipBits(t, path, last.DataEnd-1, 0x01) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDataDir(t, src, tt.limit)
			seg := walSegment(t, dir)
			if tt.harm != nil {
				tt.harm(t, seg)
			}
			r, err := InspectDataDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			// Damage may come with a note on what it cost; a torn tail
			// with nothing else.
			found, ok := r.Notes, len(r.Damage) == 0
			if tt.damage {
				found, ok = r.Damage, true
			}
			if len(found) != 1 || found[0].File != seg || found[0].Offset != tt.at || !ok {
				t.Errorf("damage %v, notes %v; want one %s at offset %d of %s", r.Damage, r.Notes,
					map[bool]string{true: "damage", false: "note"}[tt.damage], tt.at, seg)
			}
			if r.MemberID != 1 || r.ClusterID != testClusterID {
				t.Errorf("member %d cluster %x, want 1 and %x", r.MemberID, r.ClusterID, testClusterID)
			}
		})
	}
}

// TestInspectDataDirOddSnapEntry: a directory where a snapshot file
// belongs is reported as damage, not an error that ends the check.
func TestInspectDataDirOddSnapEntry(t *testing.T) {
	lg := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	dir := t.TempDir()
	writeTestWAL(t, lg, dir, 3)
	odd := filepath.Join(dir, "member", "snap", "0000000000000001-0000000000000002.snap")
	if err := os.MkdirAll(odd, 0o700); err != nil {
		t.Fatal(err)
	}
	r, err := InspectDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Damage) != 1 || r.Damage[0].File != odd {
		t.Fatalf("damage %v, want one finding about %s", r.Damage, odd)
	}
}
