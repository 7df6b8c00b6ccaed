// Command raftkv is a replicated key-value server built on etcd's raft
// library, driven like etcd's raftexample.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "raftkv:", err)
		os.Exit(exitCode(err)) // see clientflags.go
	}
}
