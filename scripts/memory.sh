#!/usr/bin/env bash
# Measures memory and disk after a write load: start a fresh three-node
# cluster on the Procfile's ports, write REQUESTS 64-byte values to as many
# distinct keys with raftkv bench, then print each node's peak and current
# resident memory and the size of one data dir.
# Usage: scripts/memory.sh [REQUESTS] (default 1000000), after make build.
set -euo pipefail
bin=$(realpath "${RAFTKV:-bin/raftkv}")
requests=${1:-1000000}
peers=http://127.0.0.1:12379,http://127.0.0.1:22379,http://127.0.0.1:32379
# stop terminates the given processes and waits until they are gone.
stop() {
	kill "$@" 2>/dev/null || true
	for pid in "$@"; do tail --pid="$pid" -f /dev/null; done
}
dir=$(mktemp -d)
pids=()
for i in 1 2 3; do
	(cd "$dir" && exec "$bin" serve --id "$i" --cluster "$peers" --port "${i}2380" --log-level warn >"node$i.log" 2>&1) &
	pids+=($!)
	disown # its end is awaited below, without the shell's "Killed" line
done
trap 'stop "${pids[@]}"; rm -rf "$dir"' EXIT
for i in 1 2 3; do until curl -sf "localhost:${i}2380/readyz" >/dev/null; do sleep 0.2; done; done
"$bin" bench --requests "$requests" --clients 64 --keys "$requests" --value-size 64
leader=$(curl -s localhost:12380/v1/status | sed -n 's/.*"leader": *\([0-9]*\).*/\1/p')
for i in 1 2 3; do
	role=follower
	[ "$i" = "$leader" ] && role=leader
	echo "node $i ($role): $(grep -E 'VmHWM|VmRSS' "/proc/${pids[$((i - 1))]}/status" | tr -s ' \t\n' ' ')"
done
du -sh "$dir/raftkv-1"
