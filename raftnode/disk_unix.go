//go:build unix

package raftnode

import "golang.org/x/sys/unix"

// diskSpace is the space of the file system that holds dir: what an
// unprivileged process may still use, and its size; ok is false when it
// cannot be read.
func diskSpace(dir string) (free, size uint64, ok bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, false
	}
	bsize := uint64(st.Bsize) // int64 on Linux, uint32 on the BSDs
	return st.Bavail * bsize, st.Blocks * bsize, true
}
