// Package e2e holds raftkv's end-to-end tests: they build the raftkv binary
// once, run real `raftkv serve` processes over loopback with data dirs in
// temporary directories, and drive them through the client API, signals and
// the command line as an operator would. The package has no code of its own.
package e2e
