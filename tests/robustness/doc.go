// Package robustness checks that raftkv stays linearizable and loses no
// acknowledged write while it is hurt, the way etcd's robustness suite
// checks etcd: it starts real three-node clusters of `raftkv serve`
// processes on loopback, each node's peer traffic through a fault-injecting
// proxy, drives them with concurrent clients through the /v1 API while a
// seeded schedule of faults runs (kill -9, SIGSTOP, network isolation and
// delay, leader transfer, member replacement), watchers follow the keys and
// lockers take a lock to increment a counter fenced by its token, records
// every request (single-key operations and transactions) as an operation,
// every event the watchers receive and every hold and fenced write, and
// checks the history with porcupine against a model of the key-value store,
// the events against the writes and the final state, and the holds and
// fenced writes against each other and the final state. See
// docs/ROBUSTNESS.md. The package has no code of its own.
package robustness
