// Package monitoring checks docs/monitoring against a running cluster: the
// alerting rules load with Prometheus's own parser, the Grafana dashboard's
// queries parse, and every metric either names, and every metric README.md's
// "What to watch in /metrics" names, is one that raftkv processes serve.
//
// It is a module of its own so that the Prometheus server module it parses
// with stays out of raftkv's go.mod: that module raises the versions of
// dependencies the raftkv binary links (gRPC among them). For the same
// reason it builds the binary under test from the repository's root, with
// raftkv's own go.mod, and runs it as child processes (Go keeps raftkv's
// internal packages, such as its test harnesses, to raftkv's module).
package monitoring
