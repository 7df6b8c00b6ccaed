package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/version"
)

// Each report lives between a pair of these lines of its Markdown file, so
// that the prose around it, written by people, survives every run: the
// comparison's between the bench-compare markers, the memory mode's between
// the bench-memory ones, in the same file.
const (
	beginMarker       = "<!-- bench-compare:begin -->"
	endMarker         = "<!-- bench-compare:end -->"
	memoryBeginMarker = "<!-- bench-memory:begin -->"
	memoryEndMarker   = "<!-- bench-memory:end -->"
	// newReportHead starts a report file that did not exist.
	newReportHead = "# Performance\n\n"
)

// machine describes where the numbers were taken.
type machine struct {
	CPU    string `json:"cpu"`
	CPUs   int    `json:"cpus"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
	Raftkv string `json:"raftkv"`
	Etcd   string `json:"etcd"`
}

// clusterResult is one fresh cluster's run of the whole matrix.
type clusterResult struct {
	System     string       `json:"system"`
	Round      int          `json:"round"`
	PeakRSSKiB []uint64     `json:"peak_rss_kib"` // per server, in node order
	Cells      []cellResult `json:"cells"`
}

// results is everything a run produced: the -json file holds it as it is.
type results struct {
	Date     string          `json:"date"`
	Command  string          `json:"command"`
	Machine  machine         `json:"machine"`
	Settings settings        `json:"settings"`
	Clusters []clusterResult `json:"clusters"`
}

// describeMachine gathers the machine's description. What cannot be read is
// reported as unknown rather than failing a run whose numbers are fine.
func describeMachine(ctx context.Context) machine {
	return machine{
		CPU:    cpuModel(),
		CPUs:   runtime.NumCPU(),
		Kernel: commandOutput(ctx, "uname", "-sr"),
		Go:     runtime.Version(),
		Raftkv: commandOutput(ctx, "git", "describe", "--always", "--dirty"),
		Etcd:   version.Version,
	}
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return "unknown"
}

func commandOutput(ctx context.Context, name string, args ...string) string {
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// writeJSON writes a run's results (results or memoryResults) to path.
func writeJSON(path string, res any) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// writeReport puts region between the lines begin and end of the Markdown
// file at path, creating the file if it is missing. The file is replaced by
// a rename, so that a failed write never leaves half a document.
func writeReport(path, begin, end, region string) error {
	doc, err := os.ReadFile(path)
	var updated string
	switch {
	case errors.Is(err, fs.ErrNotExist):
		updated = newReportHead + begin + "\n" + region + end + "\n"
	case err != nil:
		return fmt.Errorf("read report: %w", err)
	default:
		if updated, err = replaceMarked(string(doc), begin, end, region); err != nil {
			return fmt.Errorf("report %s: %w", path, err)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".bench-compare-*.md")
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.WriteString(updated); err != nil {
		tmp.Close()
		return fmt.Errorf("write report: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// replaceMarked returns doc with the text between the marker lines begin and
// end replaced by region (which ends in a newline), or with the markers and
// region appended when doc has neither. A doc with one marker alone, markers
// out of order or repeated is refused rather than guessed at: the text
// around them is someone's writing.
func replaceMarked(doc, begin, end, region string) (string, error) {
	nb, ne := strings.Count(doc, begin), strings.Count(doc, end)
	switch {
	case nb == 0 && ne == 0:
		if doc != "" && !strings.HasSuffix(doc, "\n") {
			doc += "\n"
		}
		if doc != "" {
			doc += "\n"
		}
		return doc + begin + "\n" + region + end + "\n", nil
	case nb != 1 || ne != 1:
		return "", fmt.Errorf("want one %s and one %s line, found %d and %d", begin, end, nb, ne)
	}
	from := strings.Index(doc, begin) + len(begin)
	to := strings.Index(doc, end)
	if to < from {
		return "", fmt.Errorf("%s comes before %s", end, begin)
	}
	return doc[:from] + "\n" + region + doc[to:], nil
}

// renderReport writes the Markdown region: how and where the numbers were
// taken, then one table per value size.
func renderReport(res results) string {
	var b strings.Builder
	s := res.Settings
	renderHead(&b, res.Date, res.Command, res.Machine)
	fmt.Fprintf(&b, "- Settings: rounds %d (a fresh 3-node cluster per system and round; raftkv first in odd rounds, etcd first in even ones), %v measured per cell after %v of warm-up, %s keys, closed-loop clients, worker i on node i%%3\n",
		s.Rounds, s.Duration, s.Warmup, thousands(int64(s.Keyspace)))
	b.WriteString("- Columns: medians over rounds; latency in ms; server CPU is user+system time of the three servers per completed request; client CPU is the load generator's (this harness, through each system's Go client), which shares the cores with the servers\n")

	for _, size := range s.Values {
		fmt.Fprintf(&b, "\n### Values of %s bytes\n\n", thousands(int64(size)))
		b.WriteString("| workload | clients | raftkv ops/s | etcd ops/s | raftkv/etcd | raftkv p50 / p99 | etcd p50 / p99 | raftkv CPU µs/op | etcd CPU µs/op | client CPU µs/op raftkv / etcd |\n")
		b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		var spread, trouble []string
		for _, w := range s.Workloads {
			for _, n := range s.Clients {
				cl := cell{Workload: w, Clients: n, ValueSize: size}
				rk, et := res.rounds("raftkv", cl), res.rounds("etcd", cl)
				rkOps, etOps := median(field(rk, opsPerSec)), median(field(et, opsPerSec))
				fmt.Fprintf(&b, "| %s | %d | %s%s | %s%s | %s | %s / %s | %s / %s | %s | %s | %s / %s |\n",
					w, n,
					fmtOps(rkOps), warn(rk), fmtOps(etOps), warn(et),
					ratio(rkOps, etOps),
					fmtMs(median(field(rk, p50))), fmtMs(median(field(rk, p99))),
					fmtMs(median(field(et, p50))), fmtMs(median(field(et, p99))),
					fmtMicros(median(field(rk, cpu))), fmtMicros(median(field(et, cpu))),
					fmtMicros(median(field(rk, clientCPU))), fmtMicros(median(field(et, clientCPU))))
				spread = append(spread, fmt.Sprintf("%s, %d clients: raftkv %s; etcd %s", w, n, perRound(rk), perRound(et)))
				trouble = append(trouble, errorNotes("raftkv", rk)...)
				trouble = append(trouble, errorNotes("etcd", et)...)
			}
		}
		b.WriteString("\nOps/s of each round, in round order:\n\n")
		for _, line := range spread {
			b.WriteString("- " + line + "\n")
		}
		writeErrors(&b, "a cell", trouble)
	}

	b.WriteString("\nPeak RSS (VmHWM) of each server when its cluster stopped, MiB, per round:\n\n")
	for _, system := range []string{"raftkv", "etcd"} {
		var rounds []string
		for _, c := range res.Clusters {
			if c.System != system {
				continue
			}
			mib := make([]string, len(c.PeakRSSKiB))
			for i, kib := range c.PeakRSSKiB {
				mib[i] = strconv.FormatUint((kib+512)/1024, 10)
			}
			rounds = append(rounds, strings.Join(mib, " / "))
		}
		fmt.Fprintf(&b, "- %s: %s\n", system, strings.Join(rounds, "; "))
	}
	return b.String()
}

// renderHead writes what both reports open with: when, where and how their
// numbers were taken.
func renderHead(b *strings.Builder, date, command string, m machine) {
	fmt.Fprintf(b, "Generated %s.\n\n", date)
	fmt.Fprintf(b, "- Machine: %s, %d CPUs, %s, %s\n", m.CPU, m.CPUs, m.Kernel, m.Go)
	fmt.Fprintf(b, "- Versions: raftkv `%s`, etcd %s\n", m.Raftkv, m.Etcd)
	fmt.Fprintf(b, "- Command: `%s`\n", command)
}

// rounds returns a system's results for a cell, in round order.
func (res results) rounds(system string, cl cell) []cellResult {
	var out []cellResult
	for _, c := range res.Clusters {
		if c.System != system {
			continue
		}
		for _, r := range c.Cells {
			if r.cell == cl {
				out = append(out, r)
			}
		}
	}
	return out
}

func opsPerSec(r cellResult) float64 { return r.OpsPerSec }
func p50(r cellResult) float64       { return r.P50Ms }
func p99(r cellResult) float64       { return r.P99Ms }
func cpu(r cellResult) float64       { return r.CPUMicrosPerOp }
func clientCPU(r cellResult) float64 { return r.ClientCPUMicrosPerOp }

func field(rs []cellResult, f func(cellResult) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

// warn marks a system's cell whose error rate passed maxErrorRate in any round.
func warn(rs []cellResult) string {
	for _, r := range rs {
		if r.errorRate() > maxErrorRate {
			return " ⚠"
		}
	}
	return ""
}

func errorNotes(system string, rs []cellResult) []string {
	var notes []string
	for i, r := range rs {
		if r.Errors > 0 {
			notes = append(notes, fmt.Sprintf("%s %s ×%d round %d: %d of %d requests (%.2f%%), first: %s",
				system, r.Workload, r.Clients, i+1, r.Errors, r.Ops+r.Errors, 100*r.errorRate(), r.FirstError))
		}
	}
	return notes
}

func perRound(rs []cellResult) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = fmtOps(r.OpsPerSec)
	}
	return strings.Join(s, ", ")
}

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return strconv.FormatFloat(a/b, 'f', 2, 64)
}

func fmtOps(v float64) string { return thousands(int64(math.Round(v))) }

func fmtMs(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

func fmtMicros(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }

// thousands formats n with commas between groups of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, d := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// now is the report's date, in UTC so that reports from anywhere compare.
func now() string { return time.Now().UTC().Format("2006-01-02 15:04 UTC") }

// writeErrors lists the runs that had errors, or says there were none; what
// names the unit a ⚠ marks ("a cell", "a system").
func writeErrors(b *strings.Builder, what string, trouble []string) {
	if len(trouble) == 0 {
		b.WriteString("\nErrors: none.\n")
		return
	}
	b.WriteString("\nErrors (⚠ marks " + what + " above 1% in some round):\n\n")
	for _, t := range trouble {
		b.WriteString("- " + t + "\n")
	}
}
