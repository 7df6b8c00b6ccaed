#!/usr/bin/env bash
# Measures failover as a client sees it: start a fresh three-node cluster on
# the Procfile's ports, send a loop of curl PUTs to one follower, kill -9 the
# leader, and print the time from the kill to the first acknowledged write.
# Usage: scripts/failover.sh [ROUNDS] (default 5), after make build.
set -euo pipefail
rounds=${1:-5}
. "$(dirname "$0")/cluster.sh"
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
for round in $(seq "$rounds"); do
	start_cluster
	curl -sf -XPUT localhost:12380/failover-warmup -d x
	leader=$(curl -s -D - -o /dev/null localhost:12380/failover-warmup | tr -d '\r' | awk -F': ' 'tolower($1) == "x-raft-leader" { print $2 }')
	target=$((leader % 3 + 1))
	start=$(now)
	kill -9 "${pids[$((leader - 1))]}"
	first=""
	while :; do
		code=$(curl -s -o /dev/null -w '%{http_code}' -XPUT "localhost:${target}2380/failover" -d v || true)
		[ -z "$first" ] && first="$code after $(since "$start") s"
		[ "$code" = 204 ] && break
	done
	echo "round $round: killed leader $leader; first answer $first; first acknowledged write after $(since "$start") s"
	stop_cluster
done
