//go:build race

package e2e

// raceEnabled makes TestMain build the server with -race too, so a data race
// in a server process fails the test that ran it.
const raceEnabled = true
