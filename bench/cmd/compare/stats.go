package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clockTicksPerSecond is the unit of utime and stime in /proc/PID/stat
// (sysconf(_SC_CLK_TCK), what `getconf CLK_TCK` prints). Go cannot ask
// sysconf without cgo; USER_HZ is 100 on every Linux architecture Go
// supports, so the harness assumes it.
const clockTicksPerSecond = 100

// percentile returns the p-th percentile (0 < p <= 100) of sorted samples by
// the nearest-rank method: the smallest sample with at least p% of the
// samples at or below it. Latencies are exact from every sample of the
// window, not from a histogram: a window holds at most a few hundred
// thousand samples, which sort in milliseconds.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// median returns the median of xs (the mean of the two middle values for an
// even count), or 0 for none. It does not reorder xs.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	mid := len(s) / 2
	if len(s)%2 == 1 {
		return s[mid]
	}
	return (s[mid-1] + s[mid]) / 2
}

// parseCPUTicks returns utime+stime, fields 14 and 15 of a /proc/PID/stat
// line, in clock ticks. The command name (field 2) is in parentheses and may
// itself hold spaces and parentheses, so the fields are counted from the
// last ')' rather than split from the start.
func parseCPUTicks(stat string) (uint64, error) {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("parse /proc stat: no ')' after the command name in %q", stat)
	}
	// After the name come fields 3 (state) onwards, so field n is rest[n-3].
	rest := strings.Fields(stat[end+1:])
	const utime, stime = 14 - 3, 15 - 3
	if len(rest) <= stime {
		return 0, fmt.Errorf("parse /proc stat: %d fields after the command name, want more than %d", len(rest), stime)
	}
	var total uint64
	for _, i := range []int{utime, stime} {
		n, err := strconv.ParseUint(rest[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc stat field %d: %w", i+3, err)
		}
		total += n
	}
	return total, nil
}

// cpuTicks returns the CPU time the processes have used so far, summed, in
// clock ticks.
func cpuTicks(pids []int) (uint64, error) {
	var total uint64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, fmt.Errorf("read cpu time of pid %d: %w", pid, err)
		}
		n, err := parseCPUTicks(string(b))
		if err != nil {
			return 0, fmt.Errorf("pid %d: %w", pid, err)
		}
		total += n
	}
	return total, nil
}

// peakRSSKiB returns a process's peak resident set size (VmHWM) in KiB.
func peakRSSKiB(pid int) (uint64, error) {
	peak, _, err := rssKiB(pid)
	return peak, err
}

// rssKiB returns a process's peak resident set size (VmHWM) and its current
// one (VmRSS), in KiB, from one read of /proc/PID/status.
func rssKiB(pid int) (peak, current uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read rss of pid %d: %w", pid, err)
	}
	if peak, err = statusKiB(string(b), "VmHWM"); err != nil {
		return 0, 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	if current, err = statusKiB(string(b), "VmRSS"); err != nil {
		return 0, 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	return peak, current, nil
}

// statusKiB returns the value of field, such as VmHWM, from the text of a
// /proc/PID/status, where such sizes are written in kB (meaning KiB).
func statusKiB(status, field string) (uint64, error) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		n, ok := strings.CutSuffix(strings.TrimSpace(v), " kB")
		if !ok {
			return 0, fmt.Errorf("parse %s: %q is not a size in kB", field, strings.TrimSpace(v))
		}
		kib, err := strconv.ParseUint(n, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s: %w", field, err)
		}
		return kib, nil
	}
	return 0, fmt.Errorf("no %s in /proc status", field)
}

// cpuMicrosPerOp turns a tick delta over ops requests into µs per request.
func cpuMicrosPerOp(ticks uint64, ops int64) float64 {
	if ops == 0 {
		return 0
	}
	return float64(ticks) * 1e6 / clockTicksPerSecond / float64(ops)
}
