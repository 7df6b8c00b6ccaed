// Command raftkv is a replicated key-value server built on etcd's raft
// library, driven like etcd's raftexample.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/raftkv/raftkv/client"
)

func main() {
	cmd, err := newRootCommand().ExecuteC()
	if err != nil {
		if !errors.As(err, new(*commandExit)) { // the command spoke for itself
			fmt.Fprintln(os.Stderr, "raftkv:", err)
		}
		var usage *usageError
		if errors.As(err, &usage) && cmd != nil {
			fmt.Fprintf(os.Stderr, "Usage: %s\nRun '%s --help' for examples and every flag.\n", cmd.UseLine(), cmd.CommandPath())
		}
		os.Exit(exitStatus(err))
	}
}

// exitStatus extends exitCode (clientflags.go) to the member and leader
// commands: a member id that does not exist is "not found" (3), like a
// missing key; a change the cluster refused because of its state (any 409,
// 410 member_removed) is 4, like a precondition that did not hold: in both
// cases nothing changed. A damaged data dir (data verify) is 7.
// docs/CLI.md documents them.
func exitStatus(err error) int {
	var child *commandExit
	switch {
	case errors.As(err, &child):
		return child.code
	case errors.Is(err, client.ErrOutcomeUnknown):
		return exitOutcomeUnknown
	case errors.Is(err, client.ErrMemberNotFound):
		return exitNotFound
	case errors.Is(err, client.ErrConflict):
		return exitPrecondition
	case errors.Is(err, errDamaged):
		return exitDamaged
	}
	return exitCode(err)
}
