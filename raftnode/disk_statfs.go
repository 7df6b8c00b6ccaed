//go:build linux || darwin

package raftnode

import "golang.org/x/sys/unix"

// diskSpace is the space of the file system that holds dir: the blocks
// free for an unprivileged process (root may also use those reserved for
// it), and its size; ok is false when it cannot be read. Statfs_t differs
// between systems: this file is for the two whose fields it knows.
func diskSpace(dir string) (free, size uint64, ok bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, false
	}
	bsize := uint64(st.Bsize) // int64 on Linux, uint32 on macOS
	return st.Bavail * bsize, st.Blocks * bsize, true
}
