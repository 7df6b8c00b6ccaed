#!/usr/bin/env bash
# Measures memory and disk after a write load: start a fresh three-node
# cluster on the Procfile's ports, write REQUESTS 64-byte values to as many
# distinct keys with raftkv bench, then print each node's peak and current
# resident memory and the size of one data dir.
# Usage: scripts/memory.sh [REQUESTS] (default 1000000), after make build.
set -euo pipefail
requests=${1:-1000000}
. "$(dirname "$0")/cluster.sh"
trap stop_cluster EXIT
start_cluster
"$bin" bench --requests "$requests" --clients 64 --keys "$requests" --value-size 64
leader=$(curl -s localhost:12380/v1/status | sed -n 's/.*"leader": *\([0-9]*\).*/\1/p')
for i in 1 2 3; do
	role=follower
	[ "$i" = "$leader" ] && role=leader
	echo "node $i ($role): $(grep -E 'VmHWM|VmRSS' "/proc/${pids[$((i - 1))]}/status" | tr -s ' \t\n' ' ')"
done
du -sh "$dir/raftkv-1"
