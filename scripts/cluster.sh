# Sourced by the measurement scripts: a fresh three-node cluster on the
# Procfile's ports, in a temporary directory.
bin=$(realpath "${RAFTKV:-bin/raftkv}")
peers=http://127.0.0.1:12379,http://127.0.0.1:22379,http://127.0.0.1:32379

# start_cluster starts the three nodes in a new directory $dir, records their
# pids in $pids (node i at index i-1) and waits until each is ready.
start_cluster() {
	dir=$(mktemp -d)
	pids=()
	for i in 1 2 3; do
		(cd "$dir" && exec "$bin" serve --id "$i" --cluster "$peers" --port "${i}2380" --log-level warn >"node$i.log" 2>&1) &
		pids+=($!)
		disown # stop_cluster awaits it, without the shell's "Killed" line
	done
	for i in 1 2 3; do until curl -sf "localhost:${i}2380/readyz" >/dev/null; do sleep 0.1; done; done
}

# stop_cluster stops the nodes still running, waits until they are gone and
# removes the directory.
stop_cluster() {
	kill "${pids[@]}" 2>/dev/null || true
	for pid in "${pids[@]}"; do tail --pid="$pid" -f /dev/null; done
	rm -rf "$dir"
}
