package raftnode

import (
	"io/fs"
	"os"
	"path/filepath"
)

// DataDirUsage is what dir holds: the bytes of every file under it, and
// the WAL and snapshot files (member/wal/*.wal, member/snap/*.snap). A file
// that vanishes while it is counted is left out.
func DataDirUsage(dir string) (size int64, wals, snaps int) {
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			size += info.Size()
		}
		return nil
	})
	return size, countFiles(filepath.Join(dir, "member", "wal"), ".wal"),
		countFiles(filepath.Join(dir, "member", "snap"), ".snap")
}

func countFiles(dir, ext string) int {
	entries, _ := os.ReadDir(dir)
	n := 0
	for _, e := range entries {
		if !e.IsDir() && filepath.Ext(e.Name()) == ext {
			n++
		}
	}
	return n
}
