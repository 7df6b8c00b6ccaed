// Package proctest runs the raftkv binary as child processes for the
// process-level test suites (tests/e2e and tests/robustness), so that both
// start, stop and watch their servers the same way: the binary is built once
// per test binary, with -race when the tests run with it; every process gets
// an environment without RAFTKV_ settings and writes its output to a log
// file; stopping is SIGTERM, then SIGKILL.
package proctest
