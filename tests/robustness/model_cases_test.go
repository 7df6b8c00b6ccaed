package robustness

import (
	"math"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/raftkv/raftkv/wire"
)

// Helpers that build operations for the model's tests. Times are arbitrary
// units; never is the return time of an operation of unknown outcome.
const never = math.MaxInt64

// Keys of the model's tests: three of group 0, one of group 1.
var (
	ka = keyName(0, 0)
	kb = keyName(0, 1)
	kc = keyName(0, 2)
	kx = keyName(1, 0)
)

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

// txn is a transaction: if every compare of cmps holds, success, else
// failure.
func txn(cmps []txnCompare, success, failure []txnOp) kvInput {
	return kvInput{Kind: opTxn, Txn: &txnInput{Compare: cmps, Success: success, Failure: failure}}
}

func ifMod(key string, rev uint64) []txnCompare {
	return []txnCompare{{Key: key, Target: wire.TargetModRevision, Op: "=", Number: rev}}
}

func ifValue(key, value string) []txnCompare {
	return []txnCompare{{Key: key, Target: wire.TargetValue, Op: "=", Value: value}}
}

func tops(ops ...txnOp) []txnOp    { return ops }
func tget(key string) txnOp        { return txnOp{Kind: opGet, Key: key} }
func tput(key, value string) txnOp { return txnOp{Kind: opPut, Key: key, Value: value} }
func tdel(key string) txnOp        { return txnOp{Kind: opDelete, Key: key} }
func rGot(value string, mod, create, ver uint64) txnResult {
	return txnResult{Found: true, Value: value, ModRev: mod, CreateRev: create, Version: ver}
}
func rPut(value string, mod, create, ver uint64) txnResult {
	return txnResult{Value: value, ModRev: mod, CreateRev: create, Version: ver, Created: ver == 1}
}
func rDel(n int) txnResult { return txnResult{Deleted: n} }

var rAbsent = txnResult{}

// txnDone is a transaction's answer: the branch, the revision, the results.
func txnDone(succeeded bool, rev uint64, results ...txnResult) kvOutput {
	return kvOutput{Status: stOK, Succeeded: succeeded, Rev: rev, Results: results}
}

// modelCase is a small history and whether it is linearizable.
type modelCase struct {
	name string
	ops  []porcupine.Operation
	want bool
}

func checkModelCases(t *testing.T, tests []modelCase) {
	t.Helper()
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

// TestModel checks the model on small histories, linearizable or not, each
// a case the robustness histories rely on it to tell apart.
func TestModel(t *testing.T) {
	checkModelCases(t, []modelCase{
		{"sequential put and get", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(0, 2, 3, get(ka), read("x", 5, 5, 1, 7)),
			op(1, 4, 5, put(ka, "y"), wrote(9, 5, 2)),
			op(1, 6, 7, get(ka), read("y", 9, 5, 2, 9)),
		}, true},
		{"stale read after an acknowledged write", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(0, 2, 3, put(ka, "y"), wrote(6, 5, 2)),
			op(1, 4, 5, get(ka), read("x", 5, 5, 1, 5)),
		}, false},
		{"read of a value nobody wrote", []porcupine.Operation{
			op(0, 0, 1, get(ka), read("z", 5, 5, 1, 5)),
		}, false},
		{"missing key reads not found", []porcupine.Operation{
			op(0, 0, 1, get(ka), notFound),
			op(0, 2, 3, del(ka), notFound),
		}, true},
		{"lost write: a later read misses an acknowledged put", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(1, 2, 3, get(ka), notFound),
		}, false},
		{"concurrent puts, reads agree on one order", []porcupine.Operation{
			op(0, 0, 10, put(ka, "x"), wrote(6, 5, 2)),
			op(1, 0, 10, put(ka, "y"), wrote(5, 5, 1)),
			op(2, 11, 12, get(ka), read("x", 6, 5, 2, 6)),
		}, true},
		{"concurrent puts with revisions against the order of versions", []porcupine.Operation{
			op(0, 0, 10, put(ka, "x"), wrote(5, 5, 2)),
			op(1, 0, 10, put(ka, "y"), wrote(6, 6, 1)),
		}, false},
		{"revisions going back in real time", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(9, 9, 1)),
			op(0, 2, 3, put(ka, "y"), wrote(7, 9, 2)),
		}, false},
		{"read served below an acknowledged write's revision", []porcupine.Operation{
			op(0, 0, 1, put(kb, "x"), wrote(9, 9, 1)),
			op(1, 2, 3, get(kb), read("x", 9, 9, 1, 8)),
		}, false},
		{"write below a read's store revision", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(3, 3, 1)),
			op(1, 2, 3, get(ka), read("x", 3, 3, 1, 10)),
			op(0, 4, 5, put(ka, "y"), wrote(8, 3, 2)),
		}, false},
		{"write applied twice (version skips)", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(0, 2, 3, put(ka, "y"), wrote(7, 5, 3)),
		}, false},
		{"unknown put never seen", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(1, 2, never, put(ka, "y"), unknown),
			op(2, 3, 4, get(ka), read("x", 5, 5, 1, 6)),
		}, true},
		{"unknown put seen later, then overwritten", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(1, 2, never, put(ka, "y"), unknown),
			op(2, 3, 4, get(ka), read("y", 6, 5, 2, 6)),
			op(2, 5, 6, put(ka, "z"), wrote(8, 5, 3)),
			op(2, 7, 8, get(ka), read("z", 8, 5, 3, 8)),
		}, true},
		{"unknown put applied later than it was seen", []porcupine.Operation{
			op(1, 0, never, put(ka, "y"), unknown),
			op(2, 3, 4, get(ka), read("y", 6, 6, 1, 6)),
			op(2, 5, 6, get(ka), notFound),
		}, false},
		{"unknown put of a value seen only by a 412 afterwards", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(1, 2, never, put(ka, "y"), unknown),
			op(0, 3, 4, cas(ka, "z", 5), failed(7)),
			op(0, 5, 6, put(ka, "w"), wrote(9, 5, 3)),
		}, true},
		{"compare-and-swap on the revision read", []porcupine.Operation{
			op(0, 0, 1, create(ka, "x"), wrote(5, 5, 1)),
			op(1, 2, 3, create(ka, "y"), failed(5)),
			op(1, 4, 5, cas(ka, "y", 5), wrote(6, 5, 2)),
			op(0, 6, 7, cas(ka, "z", 5), failed(6)),
			op(0, 8, 9, get(ka), read("y", 6, 5, 2, 6)),
		}, true},
		{"compare-and-swap that fails although the revision matches", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(1, 2, 3, cas(ka, "y", 5), failed(5)),
		}, false},
		{"two compare-and-swaps on the same revision both succeed", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(1, 2, 5, cas(ka, "y", 5), wrote(6, 5, 2)),
			op(2, 2, 5, cas(ka, "z", 5), wrote(7, 5, 3)),
		}, false},
		{"unknown compare-and-swap on an unseen revision never holds", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(1, 2, never, put(ka, "y"), unknown),
			op(2, 3, never, cas(ka, "z", 5), unknown),
			op(0, 4, 5, get(ka), read("z", 8, 5, 3, 8)),
		}, false},
		{"delete, then create only", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(0, 2, 3, del(ka), deleted(6)),
			op(1, 4, 5, get(ka), notFound),
			op(1, 6, 7, del(ka), notFound),
			op(1, 8, 9, create(ka, "y"), wrote(9, 9, 1)),
		}, true},
		{"conditional delete of a missing key is a 412 without revision", []porcupine.Operation{
			op(0, 0, 1, kvInput{Kind: opDelete, Key: ka, Cond: condModRev, CondRev: 3}, failed(0)),
		}, true},
		{"delete below the previous write's revision", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(0, 2, 3, del(ka), deleted(4)),
		}, false},
		{"unknown delete, either way", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(1, 2, never, del(ka), unknown),
			op(0, 3, 4, get(ka), read("x", 5, 5, 1, 5)),
			op(0, 5, 6, get(ka), notFound),
		}, true},
		{"a put to another key of the group does not excuse a lost one", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(0, 2, 3, put(kb, "x2"), wrote(6, 6, 1)),
			op(1, 4, 5, get(kb), read("x2", 6, 6, 1, 6)),
			op(1, 6, 7, get(ka), notFound),
		}, false},
		{"a write below an earlier write to another key of the group", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(9, 9, 1)),
			op(1, 2, 3, put(kb, "y"), wrote(8, 8, 1)),
		}, false},
		{"keys of other groups are checked apart", []porcupine.Operation{
			op(0, 0, 1, put(kx, "w"), wrote(5, 5, 1)),
			op(1, 2, 3, get(ka), notFound),
			op(1, 4, 5, get(kx), read("w", 5, 5, 1, 5)),
		}, true},
	})
}

// TestTxnModel checks the model's transactions: atomic, at one revision,
// on the branch their compares choose.
func TestTxnModel(t *testing.T) {
	move := txn(ifValue(ka, "x"), tops(tget(ka), tput(kb, "y"), tdel(ka)), tops(tget(ka), tget(kb)))
	pair := txn(ifMod(ka, 5), tops(tput(ka, "x2"), tput(kb, "y2")), tops(tget(ka), tget(kb)))
	snapshot := txn(nil, tops(tget(ka), tget(kb), tget(kc)), nil)
	checkModelCases(t, []modelCase{
		{"a move: get a, put b, delete a, at one revision", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(1, 2, 3, move, txnDone(true, 7, rGot("x", 5, 5, 1), rPut("y", 7, 7, 1), rDel(1))),
			op(0, 4, 5, get(ka), notFound),
			op(0, 6, 7, get(kb), read("y", 7, 7, 1, 7)),
		}, true},
		{"a failed compare runs the failure branch at the store revision", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(0, 2, 3, put(kx, "w"), wrote(6, 6, 1)),
			op(1, 4, 5, txn(ifMod(ka, 4), tops(tput(ka, "z")), tops(tget(ka))), txnDone(false, 6, rGot("x", 5, 5, 1))),
		}, true},
		{"a snapshot of the group through the log", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(0, 2, 3, put(kb, "y"), wrote(6, 6, 1)),
			op(1, 4, 5, snapshot, txnDone(true, 6, rGot("x", 5, 5, 1), rGot("y", 6, 6, 1), rAbsent)),
		}, true},
		{"a delete of a missing key writes nothing and keeps the revision", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(1, 2, 3, txn(nil, tops(tdel(kb)), nil), txnDone(true, 5, rDel(0))),
		}, true},
		{"operations of a branch see the writes before them", []porcupine.Operation{
			op(1, 0, 1, txn(nil, tops(tput(ka, "x"), tget(ka)), nil), txnDone(true, 5, rPut("x", 5, 5, 1), rGot("x", 5, 5, 1))),
		}, true},
		{"an unknown transaction seen later, whole", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(1, 2, never, pair, unknown),
			op(2, 3, 4, get(kb), read("y2", 8, 8, 1, 8)),
			op(2, 5, 6, get(ka), read("x2", 8, 5, 2, 8)),
		}, true},
		{"an unknown transaction that never happened", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(1, 2, never, pair, unknown),
			op(2, 3, 4, snapshot, txnDone(true, 6, rGot("x", 5, 5, 1), rAbsent, rAbsent)),
		}, true},
		{"success reported though the compare could not hold", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(0, 2, 3, put(ka, "w"), wrote(6, 5, 2)),
			op(1, 4, 5, pair, txnDone(true, 7, rPut("x2", 7, 5, 3), rPut("y2", 7, 7, 1))),
		}, false},
		{"failure reported though the compare held", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(1, 2, 3, pair, txnDone(false, 5, rGot("x", 5, 5, 1), rAbsent)),
		}, false},
		{"a concurrent reader sees half of a transaction", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(0, 2, 3, put(kb, "y"), wrote(6, 6, 1)),
			op(1, 4, 10, pair, txnDone(true, 8, rPut("x2", 8, 5, 2), rPut("y2", 8, 6, 2))),
			op(2, 5, 9, snapshot, txnDone(true, 8, rGot("x2", 8, 5, 2), rGot("y", 6, 6, 1), rAbsent)),
		}, false},
		{"two reads, one after the other, see half of a transaction", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(0, 2, 3, put(kb, "y"), wrote(6, 6, 1)),
			op(1, 4, 10, pair, txnDone(true, 8, rPut("x2", 8, 5, 2), rPut("y2", 8, 6, 2))),
			op(2, 5, 6, get(ka), read("x2", 8, 5, 2, 8)),
			op(2, 7, 8, get(kb), read("y", 6, 6, 1, 8)),
		}, false},
		{"a move that lost its delete", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(1, 2, 3, move, txnDone(true, 7, rGot("x", 5, 5, 1), rPut("y", 7, 7, 1), rDel(1))),
			op(0, 4, 5, get(ka), read("x", 5, 5, 1, 7)),
		}, false},
		{"an unknown transaction applied in half", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(1, 2, never, pair, unknown),
			op(2, 3, 4, get(kb), read("y2", 8, 8, 1, 8)),
			op(2, 5, 6, get(ka), read("x", 5, 5, 1, 8)),
		}, false},
		{"the puts of one transaction at two revisions", []porcupine.Operation{
			op(0, 0, 1, put(ka, "x"), wrote(5, 5, 1)),
			op(1, 2, 3, pair, txnDone(true, 7, rPut("x2", 7, 5, 2), rPut("y2", 8, 8, 1))),
		}, false},
		{"a transaction below an earlier write to its group", []porcupine.Operation{
			op(0, 0, 1, put(kc, "z"), wrote(9, 9, 1)),
			op(1, 2, 3, txn(nil, tops(tput(kb, "y")), nil), txnDone(true, 8, rPut("y", 8, 8, 1))),
		}, false},
		{"a read-only transaction served below an acknowledged write", []porcupine.Operation{
			op(0, 0, 1, put(kc, "z"), wrote(9, 9, 1)),
			op(1, 2, 3, snapshot, txnDone(true, 8, rAbsent, rAbsent, rGot("z", 9, 9, 1))),
		}, false},
		{"a get that misses the put before it in its branch", []porcupine.Operation{
			op(1, 0, 1, txn(nil, tops(tput(ka, "x"), tget(ka)), nil), txnDone(true, 5, rPut("x", 5, 5, 1), rAbsent)),
		}, false},
		{"a delete that reports a key that was missing", []porcupine.Operation{
			op(1, 0, 1, txn(nil, tops(tdel(ka)), nil), txnDone(true, 5, rDel(1))),
		}, false},
	})
}
