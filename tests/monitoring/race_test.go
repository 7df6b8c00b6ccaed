//go:build race

package monitoring

// raceEnabled makes buildRaftkv build the server with -race too, so that a
// data race in a server process fails the test that ran it.
const raceEnabled = true
