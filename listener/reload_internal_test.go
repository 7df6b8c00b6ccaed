package listener

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWatchedReadsOnlyWhatMayHaveChanged: a refresh reads the file again
// when its stat changed, or when the last read came within racyWindow of
// its modification time, where a rewrite to the same size in the same
// clock tick would not show; past that window a stat that did not change
// is trusted and the file is not read.
func TestWatchedReadsOnlyWhatMayHaveChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	mtime := time.Now().Add(-time.Hour).Truncate(time.Second)
	// rewrite gives the file new content of the same size and the same
	// modification time: only reading it can tell.
	rewrite := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	w := &watched[string]{paths: []string{path}, parse: func(data [][]byte) (string, error) { return string(data[0]), nil }}
	refresh := func(at time.Time, wantChanged bool, want string) {
		t.Helper()
		changed, err := w.refresh(at)
		if err != nil || changed != wantChanged || w.value != want {
			t.Fatalf("refresh at mtime+%v: changed %v, value %q, %v; want changed %v, value %q",
				at.Sub(mtime), changed, w.value, err, wantChanged, want)
		}
	}

	rewrite("aaaa")
	refresh(mtime, true, "aaaa") // read in the tick of the modification
	rewrite("bbbb")
	refresh(mtime.Add(time.Second), true, "bbbb") // racy: read again
	refresh(mtime.Add(racyWindow), false, "bbbb") // read again, same content
	rewrite("cccc")
	refresh(mtime.Add(racyWindow+time.Second), false, "bbbb") // trusted stat: not read
	later := mtime.Add(time.Minute)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	refresh(later.Add(time.Hour), true, "cccc") // the stat changed
}
