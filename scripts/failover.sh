#!/usr/bin/env bash
# Measures failover as a client sees it: start a fresh three-node cluster on
# the Procfile's ports, send a loop of curl PUTs to one follower, kill -9 the
# leader, and print the time from the kill to the first acknowledged write.
# Usage: scripts/failover.sh [ROUNDS] (default 5), after make build.
set -euo pipefail
bin=$(realpath "${RAFTKV:-bin/raftkv}")
rounds=${1:-5}
peers=http://127.0.0.1:12379,http://127.0.0.1:22379,http://127.0.0.1:32379
# stop terminates the given processes and waits until they are gone.
stop() {
	kill "$@" 2>/dev/null || true
	for pid in "$@"; do tail --pid="$pid" -f /dev/null; done
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
for round in $(seq "$rounds"); do
	dir=$(mktemp -d)
	pids=()
	for i in 1 2 3; do
		(cd "$dir" && exec "$bin" serve --id "$i" --cluster "$peers" --port "${i}2380" --log-level warn >"node$i.log" 2>&1) &
		pids+=($!)
		disown # its end is awaited below, without the shell's "Killed" line
	done
	for i in 1 2 3; do until curl -sf "localhost:${i}2380/readyz" >/dev/null; do sleep 0.1; done; done
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
	stop "${pids[@]}"
	rm -rf "$dir"
done
