//go:build unix

package robustness

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// reportRoot is where failed histories leave their reports:
// $ROBUSTNESS_REPORT_DIR, or a new directory under the system's temporary
// directory, which outlives the test so that the report can be read.
func reportRoot() (string, error) {
	if dir := os.Getenv("ROBUSTNESS_REPORT_DIR"); dir != "" {
		return dir, os.MkdirAll(dir, 0o755)
	}
	return os.MkdirTemp("", "raftkv-robustness-report-")
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// visualizeTimeout bounds the search behind a report's visualization, which
// computes the longest linearizable prefix of every partition.
const visualizeTimeout = time.Minute

// report is what a failed history leaves behind.
type report struct {
	Spec     historySpec    `json:"spec"`
	Schedule string         `json:"schedule"`
	Replay   string         `json:"replay"`
	Failures []string       `json:"failures"`
	Faults   []faultRecord  `json:"faults"`
	Stats    map[string]int `json:"stats"`
}

// writeReport writes, in a new directory: the porcupine visualization
// (visualization.html, with the faults as annotations), the history
// (history.json), what the watchers received (watches.json), what the
// lockers did (locks.json), the seed, schedule, fault records and failures
// (report.json), and the logs of every node and of the proxies (logs/). It
// returns the directory.
func writeReport(testName string, res *historyResult, ops []porcupine.Operation, logs []string, annotations []porcupine.Annotation) (string, error) {
	root, err := reportRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, fmt.Sprintf("%s-seed%d", unsafeName.ReplaceAllString(testName, "_"), res.Spec.Seed))
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return "", err
	}
	var errs []string
	prepareHistory(ops)
	result, info := porcupine.CheckOperationsVerbose(kvModel, ops, visualizeTimeout)
	if result == porcupine.Unknown {
		errs = append(errs, fmt.Sprintf("the visualization is partial: porcupine did not finish within %v", visualizeTimeout))
	}
	info.AddAnnotations(annotations)
	if err := porcupine.VisualizePath(kvModel, info, filepath.Join(dir, "visualization.html")); err != nil {
		errs = append(errs, "visualization: "+err.Error())
	}
	if err := writeHistory(filepath.Join(dir, "history.json"), ops); err != nil {
		errs = append(errs, "history: "+err.Error())
	}
	if res.watches != nil {
		b, err := json.MarshalIndent(res.watches, "", " ")
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "watches.json"), b, 0o644)
		}
		if err != nil {
			errs = append(errs, "watches: "+err.Error())
		}
	}
	if res.locks != nil {
		b, err := json.MarshalIndent(res.locks, "", " ")
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "locks.json"), b, 0o644)
		}
		if err != nil {
			errs = append(errs, "locks: "+err.Error())
		}
	}
	rep := report{
		Spec: res.Spec, Schedule: fmt.Sprint(res.Spec.Faults), Replay: res.replay, Failures: res.Failures, Faults: res.Records,
		Stats: map[string]int{"operations": res.Stats.ops, "definite": res.Stats.definite,
			"unknown": res.Stats.unknown, "acknowledged_writes": res.Stats.acknowledgedWrites, "transactions": res.Stats.txns},
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "report.json"), b, 0o644)
	}
	if err != nil {
		errs = append(errs, "report: "+err.Error())
	}
	for _, p := range logs {
		if err := copyFile(p, filepath.Join(dir, "logs", filepath.Base(p))); err != nil {
			errs = append(errs, "logs: "+err.Error())
		}
	}
	if len(errs) > 0 {
		return dir, fmt.Errorf("report %s incomplete: %s", dir, strings.Join(errs, "; "))
	}
	return dir, nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
