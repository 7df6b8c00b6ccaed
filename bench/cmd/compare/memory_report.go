package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// renderMemoryReport writes the memory mode's Markdown region: how and where
// the numbers were taken, one row per system of medians over rounds, then
// every round's figures.
func renderMemoryReport(res memoryResults) string {
	var b strings.Builder
	m := res.Settings
	renderHead(&b, res.Date, res.Command, res.Machine)
	fmt.Fprintf(&b, "- Settings: rounds %d (a fresh 3-node cluster per system and round; raftkv first in odd rounds, etcd first in even ones), %v of closed-loop puts on the empty cluster by %d clients (worker i on node i%%3), keys drawn uniformly from %s (`%s` … `%s`), values of %s random printable bytes\n",
		m.Rounds, m.Duration, m.Clients, thousands(int64(m.Keyspace)), keyName(0, m.Keyspace), keyName(m.Keyspace-1, m.Keyspace), thousands(int64(m.ValueSize)))
	b.WriteString("- Columns: medians over rounds; puts are those answered within the time; peak RSS is each server's VmHWM once the puts stopped, in MiB; distinct keys are those held by the node with the most; bytes per key is the node mean's peak RSS over the distinct keys, each server's baseline included (its RSS at start is under each round)\n\n")

	b.WriteString("| system | puts | puts/s | distinct keys | peak RSS, largest node | peak RSS, node mean | peak RSS per key |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|\n")
	var trouble []string
	for _, system := range []string{"raftkv", "etcd"} {
		rs := res.system(system)
		fmt.Fprintf(&b, "| %s | %s | %s%s | %s | %s MiB | %s MiB | %s B |\n", system,
			fmtOps(median(memoryField(rs, func(r memoryRound) float64 { return float64(r.Puts.Ops) }))),
			fmtOps(median(memoryField(rs, func(r memoryRound) float64 { return r.Puts.OpsPerSec }))), warn(memoryPuts(rs)),
			fmtOps(median(memoryField(rs, func(r memoryRound) float64 { return float64(r.Keys) }))),
			fmtMiB(median(memoryField(rs, func(r memoryRound) float64 { return float64(maxKiB(r.PeakRSSKiB)) }))),
			fmtMiB(median(memoryField(rs, func(r memoryRound) float64 { return meanKiB(r.PeakRSSKiB) }))),
			fmtBytesPerKey(median(memoryField(rs, memoryRound.bytesPerKey))))
		trouble = append(trouble, errorNotes(system, memoryPuts(rs))...)
	}

	b.WriteString("\nEach round, in round order (RSS per node, in MiB):\n\n")
	for _, system := range []string{"raftkv", "etcd"} {
		for _, r := range res.system(system) {
			fmt.Fprintf(&b, "- %s round %d: %s puts (%s/s); %s keys; peak RSS %s, RSS now %s, at start %s; %s B/key\n",
				system, r.Round, thousands(r.Puts.Ops), fmtOps(r.Puts.OpsPerSec), thousands(r.Keys),
				mibList(r.PeakRSSKiB), mibList(r.RSSKiB), mibList(r.StartRSSKiB), fmtBytesPerKey(r.bytesPerKey()))
		}
	}
	writeErrors(&b, "a system", trouble)
	return b.String()
}

// system returns a system's rounds, in round order.
func (res memoryResults) system(system string) []memoryRound {
	var out []memoryRound
	for _, r := range res.Rounds {
		if r.System == system {
			out = append(out, r)
		}
	}
	return out
}

func memoryField(rs []memoryRound, f func(memoryRound) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func memoryPuts(rs []memoryRound) []cellResult {
	out := make([]cellResult, len(rs))
	for i, r := range rs {
		out[i] = r.Puts
	}
	return out
}

// bytesPerKey is the round's peak RSS of the mean node, in bytes, over the
// distinct keys stored, or 0 when there are none. It charges each server's
// whole footprint, baseline included, to the keys.
func (r memoryRound) bytesPerKey() float64 {
	if r.Keys <= 0 {
		return 0
	}
	return meanKiB(r.PeakRSSKiB) * 1024 / float64(r.Keys)
}

// meanKiB is the mean of sizes in KiB, or 0 for none.
func meanKiB(kib []uint64) float64 {
	if len(kib) == 0 {
		return 0
	}
	var sum float64
	for _, k := range kib {
		sum += float64(k)
	}
	return sum / float64(len(kib))
}

// maxKiB is the largest of sizes in KiB, or 0 for none.
func maxKiB(kib []uint64) uint64 {
	if len(kib) == 0 {
		return 0
	}
	return slices.Max(kib)
}

// fmtMiB formats a size in KiB as whole MiB.
func fmtMiB(kib float64) string { return strconv.FormatFloat(kib/1024, 'f', 0, 64) }

// mibList formats sizes in KiB as whole MiB, "245 / 250 / 284".
func mibList(kib []uint64) string {
	s := make([]string, len(kib))
	for i, k := range kib {
		s[i] = fmtMiB(float64(k))
	}
	return strings.Join(s, " / ")
}

// fmtBytesPerKey formats bytes per key, or "–" when there were no keys.
func fmtBytesPerKey(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmtOps(v)
}
