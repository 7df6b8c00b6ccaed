//go:build race

package robustness

// raceEnabled makes the harness build the server with -race too, so a data
// race in a server process fails the history that ran it.
const raceEnabled = true
