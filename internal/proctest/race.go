//go:build race

package proctest

// RaceEnabled makes Binary build the server with -race too, so a data race
// in a server process fails the test that ran it.
const RaceEnabled = true
