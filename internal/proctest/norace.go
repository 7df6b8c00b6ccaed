//go:build !race

package proctest

// RaceEnabled is false: the tests run without the race detector, and so do
// the servers they start.
const RaceEnabled = false
