package robustness

import (
	"encoding/json"
	"math"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// recorder collects a history: every operation the clients completed, with
// call and return times on the test process's monotonic clock, and the
// faults as annotations for the visualization.
type recorder struct {
	base time.Time

	mu          sync.Mutex
	ops         []porcupine.Operation
	annotations []porcupine.Annotation
}

func newRecorder() *recorder { return &recorder{base: time.Now()} }

// now is the time since the history began, in nanoseconds (monotonic).
func (r *recorder) now() int64 { return int64(time.Since(r.base)) }

func (r *recorder) add(op porcupine.Operation) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// annotate records a fault or another harness event between start and end.
func (r *recorder) annotate(start, end int64, desc, details string) {
	r.mu.Lock()
	r.annotations = append(r.annotations, porcupine.Annotation{
		Tag: "faults", Start: start, End: end, Description: desc, Details: details,
		BackgroundColor: "#f4cccc",
	})
	r.mu.Unlock()
}

// history returns a copy of the operations recorded so far.
func (r *recorder) history() []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ops)
}

func (r *recorder) faultAnnotations() []porcupine.Annotation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.annotations)
}

// opMeta says where an operation went and how it failed; the visualization
// shows it.
type opMeta struct {
	Node string `json:"node"`
	Err  string `json:"error,omitempty"`
}

func (m opMeta) String() string {
	if m.Err == "" {
		return m.Node
	}
	return m.Node + ": " + m.Err
}

// jsonOp is an operation as history.json holds it. Return is null for an
// operation whose outcome is unknown.
type jsonOp struct {
	Client int      `json:"client"`
	Call   int64    `json:"call_ns"`
	Return *int64   `json:"return_ns"`
	Input  kvInput  `json:"input"`
	Output kvOutput `json:"output"`
	Meta   opMeta   `json:"meta"`
	Text   string   `json:"text"`
}

// writeHistory writes ops as JSON to path.
func writeHistory(path string, ops []porcupine.Operation) error {
	out := make([]jsonOp, len(ops))
	for i, op := range ops {
		in, o := op.Input.(kvInput), op.Output.(kvOutput)
		j := jsonOp{Client: op.ClientId, Call: op.Call, Input: in, Output: o, Text: describeOperation(in, o)}
		if op.Return != math.MaxInt64 {
			ret := op.Return
			j.Return = &ret
		}
		if m, ok := op.Metadata.(opMeta); ok {
			j.Meta = m
		}
		out[i] = j
	}
	b, err := json.MarshalIndent(out, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
