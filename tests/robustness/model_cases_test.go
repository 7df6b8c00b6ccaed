package robustness

import (
	"math"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// Helpers that build operations for the model's tests. Times are arbitrary
// units; never is the return time of an operation of unknown outcome.
const never = math.MaxInt64

func get(key string) kvInput { return kvInput{Kind: opGet, Key: key} }
func put(key, value string) kvInput {
	return kvInput{Kind: opPut, Key: key, Value: value}
}
func cas(key, value string, rev uint64) kvInput {
	return kvInput{Kind: opPut, Key: key, Value: value, Cond: condModRev, CondRev: rev}
}
func create(key, value string) kvInput {
	return kvInput{Kind: opPut, Key: key, Value: value, Cond: condAbsent}
}
func del(key string) kvInput { return kvInput{Kind: opDelete, Key: key} }

// read is a get's answer: value at mod revision mod, version ver, created at
// create, served at store revision at.
func read(value string, mod, create, ver, at uint64) kvOutput {
	return kvOutput{Status: stOK, Value: value, Rev: mod, CreateRev: create, Version: ver, StoreRev: at}
}

// wrote is a put's answer.
func wrote(rev, create, ver uint64) kvOutput {
	return kvOutput{Status: stOK, Rev: rev, ModRev: rev, CreateRev: create, Version: ver, Created: ver == 1}
}

func deleted(rev uint64) kvOutput { return kvOutput{Status: stOK, Rev: rev, Deleted: 1} }

var (
	notFound = kvOutput{Status: stNotFound}
	unknown  = kvOutput{Status: stUnknown}
)

func failed(etag uint64) kvOutput { return kvOutput{Status: stPrecondition, Rev: etag} }

func op(client int, call, ret int64, in kvInput, out kvOutput) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

// TestModel checks the model on small histories, linearizable or not, each
// a case the robustness histories rely on it to tell apart.
func TestModel(t *testing.T) {
	tests := []struct {
		name string
		ops  []porcupine.Operation
		want bool
	}{
		{"sequential put and get", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), wrote(5, 5, 1)),
			op(0, 2, 3, get("a"), read("x", 5, 5, 1, 7)),
			op(1, 4, 5, put("a", "y"), wrote(9, 5, 2)),
			op(1, 6, 7, get("a"), read("y", 9, 5, 2, 9)),
		}, true},
		{"stale read after an acknowledged write", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), wrote(5, 5, 1)),
			op(0, 2, 3, put("a", "y"), wrote(6, 5, 2)),
			op(1, 4, 5, get("a"), read("x", 5, 5, 1, 5)),
		}, false},
		{"read of a value nobody wrote", []porcupine.Operation{
			op(0, 0, 1, get("a"), read("z", 5, 5, 1, 5)),
		}, false},
		{"missing key reads not found", []porcupine.Operation{
			op(0, 0, 1, get("a"), notFound),
			op(0, 2, 3, del("a"), notFound),
		}, true},
		{"lost write: a later read misses an acknowledged put", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), wrote(5, 5, 1)),
			op(1, 2, 3, get("a"), notFound),
		}, false},
		{"concurrent puts, reads agree on one order", []porcupine.Operation{
			op(0, 0, 10, put("a", "x"), wrote(6, 5, 2)),
			op(1, 0, 10, put("a", "y"), wrote(5, 5, 1)),
			op(2, 11, 12, get("a"), read("x", 6, 5, 2, 6)),
		}, true},
		{"concurrent puts with revisions against the order of versions", []porcupine.Operation{
			op(0, 0, 10, put("a", "x"), wrote(5, 5, 2)),
			op(1, 0, 10, put("a", "y"), wrote(6, 6, 1)),
		}, false},
		{"revisions going back in real time", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), wrote(9, 9, 1)),
			op(0, 2, 3, put("a", "y"), wrote(7, 9, 2)),
		}, false},
		{"read served below an acknowledged write's revision", []porcupine.Operation{
			op(0, 0, 1, put("b", "x"), wrote(9, 9, 1)),
			op(1, 2, 3, get("b"), read("x", 9, 9, 1, 8)),
		}, false},
		{"write below a read's store revision", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), wrote(3, 3, 1)),
			op(1, 2, 3, get("a"), read("x", 3, 3, 1, 10)),
			op(0, 4, 5, put("a", "y"), wrote(8, 3, 2)),
		}, false},
		{"write applied twice (version skips)", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), wrote(5, 5, 1)),
			op(0, 2, 3, put("a", "y"), wrote(7, 5, 3)),
		}, false},
		{"unknown put never seen", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), wrote(5, 5, 1)),
			op(1, 2, never, put("a", "y"), unknown),
			op(2, 3, 4, get("a"), read("x", 5, 5, 1, 6)),
		}, true},
		{"unknown put seen later, then overwritten", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), wrote(5, 5, 1)),
			op(1, 2, never, put("a", "y"), unknown),
			op(2, 3, 4, get("a"), read("y", 6, 5, 2, 6)),
			op(2, 5, 6, put("a", "z"), wrote(8, 5, 3)),
			op(2, 7, 8, get("a"), read("z", 8, 5, 3, 8)),
		}, true},
		{"unknown put applied later than it was seen", []porcupine.Operation{
			op(1, 0, never, put("a", "y"), unknown),
			op(2, 3, 4, get("a"), read("y", 6, 6, 1, 6)),
			op(2, 5, 6, get("a"), notFound),
		}, false},
		{"unknown put of a value seen only by a 412 afterwards", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), wrote(5, 5, 1)),
			op(1, 2, never, put("a", "y"), unknown),
			op(0, 3, 4, cas("a", "z", 5), failed(7)),
			op(0, 5, 6, put("a", "w"), wrote(9, 5, 3)),
		}, true},
		{"compare-and-swap on the revision read", []porcupine.Operation{
			op(0, 0, 1, create("a", "x"), wrote(5, 5, 1)),
			op(1, 2, 3, create("a", "y"), failed(5)),
			op(1, 4, 5, cas("a", "y", 5), wrote(6, 5, 2)),
			op(0, 6, 7, cas("a", "z", 5), failed(6)),
			op(0, 8, 9, get("a"), read("y", 6, 5, 2, 6)),
		}, true},
		{"compare-and-swap that fails although the revision matches", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), wrote(5, 5, 1)),
			op(1, 2, 3, cas("a", "y", 5), failed(5)),
		}, false},
		{"two compare-and-swaps on the same revision both succeed", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), wrote(5, 5, 1)),
			op(1, 2, 5, cas("a", "y", 5), wrote(6, 5, 2)),
			op(2, 2, 5, cas("a", "z", 5), wrote(7, 5, 3)),
		}, false},
		{"unknown compare-and-swap on an unseen revision never holds", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), wrote(5, 5, 1)),
			op(1, 2, never, put("a", "y"), unknown),
			op(2, 3, never, cas("a", "z", 5), unknown),
			op(0, 4, 5, get("a"), read("z", 8, 5, 3, 8)),
		}, false},
		{"delete, then create only", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), wrote(5, 5, 1)),
			op(0, 2, 3, del("a"), deleted(6)),
			op(1, 4, 5, get("a"), notFound),
			op(1, 6, 7, del("a"), notFound),
			op(1, 8, 9, create("a", "y"), wrote(9, 9, 1)),
		}, true},
		{"conditional delete of a missing key is a 412 without revision", []porcupine.Operation{
			op(0, 0, 1, kvInput{Kind: opDelete, Key: "a", Cond: condModRev, CondRev: 3}, failed(0)),
		}, true},
		{"delete below the previous write's revision", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), wrote(5, 5, 1)),
			op(0, 2, 3, del("a"), deleted(4)),
		}, false},
		{"unknown delete, either way", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), wrote(5, 5, 1)),
			op(1, 2, never, del("a"), unknown),
			op(0, 3, 4, get("a"), read("x", 5, 5, 1, 5)),
			op(0, 5, 6, get("a"), notFound),
		}, true},
		{"each key on its own: a put to another key does not excuse a lost one", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), wrote(5, 5, 1)),
			op(0, 2, 3, put("b", "x2"), wrote(6, 6, 1)),
			op(1, 4, 5, get("b"), read("x2", 6, 6, 1, 6)),
			op(1, 6, 7, get("a"), notFound),
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops := append([]porcupine.Operation(nil), tt.ops...)
			prepareHistory(ops)
			res := porcupine.CheckOperationsTimeout(kvModel, ops, 10*time.Second)
			if got := res == porcupine.Ok; got != tt.want {
				t.Fatalf("linearizable = %v (%v), want %v", got, res, tt.want)
			}
		})
	}
}
