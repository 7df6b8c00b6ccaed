package kvstore

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// txnStore holds a=1 (created at 1, version 1) and b=2 written twice
// (created at 2, mod 3, version 2), at revision 3.
func txnStore(t *testing.T) *Store {
	t.Helper()
	s := NewStore()
	put(t, s, 1, "a", "1")
	put(t, s, 2, "b", "x")
	put(t, s, 3, "b", "2")
	return s
}

// applyTxnCmd applies t at index through a command's encoding, as a log
// entry would be.
func applyTxnCmd(t *testing.T, s *Store, index uint64, txn *Txn) Result {
	t.Helper()
	if err := txn.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	cmd := Command{Op: OpTxn, Origin: 1, ID: 7, Txn: txn}
	decoded, err := UnmarshalCommand(cmd.Marshal())
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return s.Apply(index, &decoded)
}

// TestTxnCompares checks every target with every operator, on a key that
// exists and one that does not.
func TestTxnCompares(t *testing.T) {
	num := func(key string, target CompareTarget, op CompareOp, n uint64) Compare {
		return Compare{Key: []byte(key), Target: target, Op: op, Number: n}
	}
	val := func(key string, op CompareOp, v string) Compare {
		return Compare{Key: []byte(key), Target: TargetValue, Op: op, Value: []byte(v)}
	}
	tests := []struct {
		c    Compare
		want bool
	}{
		{val("b", CompareEqual, "2"), true}, {val("b", CompareEqual, "3"), false},
		{val("b", CompareNotEqual, "3"), true}, {val("b", CompareNotEqual, "2"), false},
		{val("b", CompareLess, "3"), true}, {val("b", CompareLess, "2"), false},
		{val("b", CompareGreater, "1"), true}, {val("b", CompareGreater, "2"), false},
		// A missing key's value compares false whatever the operator.
		{val("zz", CompareEqual, ""), false}, {val("zz", CompareNotEqual, "x"), false},
		{num("b", TargetVersion, CompareEqual, 2), true}, {num("b", TargetVersion, CompareEqual, 1), false},
		{num("b", TargetVersion, CompareGreater, 1), true}, {num("b", TargetVersion, CompareLess, 2), false},
		{num("b", TargetCreateRevision, CompareEqual, 2), true}, {num("b", TargetCreateRevision, CompareNotEqual, 2), false},
		{num("b", TargetCreateRevision, CompareLess, 3), true}, {num("b", TargetCreateRevision, CompareGreater, 2), false},
		{num("b", TargetModRevision, CompareEqual, 3), true}, {num("b", TargetModRevision, CompareLess, 3), false},
		{num("b", TargetModRevision, CompareGreater, 2), true}, {num("b", TargetModRevision, CompareNotEqual, 4), true},
		// A missing key has version, create and mod revision 0.
		{num("zz", TargetVersion, CompareEqual, 0), true}, {num("zz", TargetCreateRevision, CompareGreater, 0), false},
		{num("zz", TargetModRevision, CompareLess, 1), true},
	}
	for i, tt := range tests {
		s := txnStore(t)
		res := applyTxnCmd(t, s, 4, &Txn{Compares: []Compare{tt.c},
			Success: []TxnOp{{Kind: TxnGet, Key: []byte("a")}},
			Failure: []TxnOp{{Kind: TxnGet, Key: []byte("b")}, {Kind: TxnGet, Key: []byte("a")}}})
		want := 1
		if !tt.want {
			want = 2
		}
		if res.Txn.Succeeded != tt.want || len(res.Txn.Results) != want {
			t.Errorf("compare %d (%+v): succeeded %v with %d results, want %v", i, tt.c, res.Txn.Succeeded, len(res.Txn.Results), tt.want)
		}
		if res.Revision != 3 || len(res.Change.Events) != 0 {
			t.Errorf("compare %d: a read-only transaction moved the revision to %d with %d events", i, res.Revision, len(res.Change.Events))
		}
	}
	// All compares must hold.
	s := txnStore(t)
	res := applyTxnCmd(t, s, 4, &Txn{Compares: []Compare{val("a", CompareEqual, "1"), val("b", CompareEqual, "nope")}})
	if res.Txn.Succeeded {
		t.Fatal("a transaction whose second compare fails succeeded")
	}
}

// TestTxnOperations runs every operation in one branch: each sees those
// before it, every write is one change at the transaction's revision, in key
// order, and the results say what each did.
func TestTxnOperations(t *testing.T) {
	s := txnStore(t)
	put(t, s, 4, "p/1", "x")
	put(t, s, 5, "p/2", "y")
	res := applyTxnCmd(t, s, 6, &Txn{
		Compares: []Compare{{Key: []byte("a"), Target: TargetModRevision, Op: CompareEqual, Number: 1}},
		Success: []TxnOp{
			{Kind: TxnPut, Key: []byte("c"), Value: []byte("new")},
			{Kind: TxnPut, Key: []byte("a"), Value: []byte("again")},
			{Kind: TxnGet, Key: []byte("c")},
			{Kind: TxnDelete, Key: []byte("b")},
			{Kind: TxnDelete, Key: []byte("missing")},
			{Kind: TxnDeletePrefix, Key: []byte("p/")},
			{Kind: TxnList, Key: nil, Limit: 1},
			{Kind: TxnGet, Key: []byte("b")},
		},
	})
	r := res.Txn
	if !r.Succeeded || len(r.Results) != 8 || res.Revision != 6 {
		t.Fatalf("result %+v at revision %d", r, res.Revision)
	}
	if !r.Results[0].Created || r.Results[0].KV.ModRevision != 6 || r.Results[0].KV.Version != 1 {
		t.Errorf("put c: %+v", r.Results[0])
	}
	if r.Results[1].Created || r.Results[1].KV.CreateRevision != 1 || r.Results[1].KV.Version != 2 {
		t.Errorf("put a: %+v", r.Results[1])
	}
	if !r.Results[2].Found || string(r.Results[2].KV.Value) != "new" {
		t.Errorf("get c after its put in the same transaction: %+v", r.Results[2])
	}
	if r.Results[3].Deleted != 1 || r.Results[4].Deleted != 0 || r.Results[5].Deleted != 2 {
		t.Errorf("deletes: %d, %d, %d; want 1, 0, 2", r.Results[3].Deleted, r.Results[4].Deleted, r.Results[5].Deleted)
	}
	if len(r.Results[6].KVs) != 1 || string(r.Results[6].KVs[0].Key) != "a" || !r.Results[6].More {
		t.Errorf("list with limit 1: %+v", r.Results[6])
	}
	if r.Results[7].Found {
		t.Errorf("get b after its delete: %+v", r.Results[7])
	}
	var keys []string
	for _, ev := range res.Change.Events {
		keys = append(keys, fmt.Sprintf("%v %s", ev.Type, ev.Key))
	}
	want := []string{"put a", "delete b", "put c", "delete p/1", "delete p/2"}
	if res.Change.Revision != 6 || fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Errorf("change at %d: %v, want %v at 6", res.Change.Revision, keys, want)
	}
	if s.Revision() != 6 || s.Len() != 2 {
		t.Errorf("store at revision %d with %d keys, want 6 and 2", s.Revision(), s.Len())
	}
}

// TestTxnValidate refuses, with its code, each transaction no store should
// apply.
func TestTxnValidate(t *testing.T) {
	put := func(k string) TxnOp { return TxnOp{Kind: TxnPut, Key: []byte(k), Value: []byte("v")} }
	many := make([]TxnOp, MaxTxnOps+1)
	for i := range many {
		many[i] = put(fmt.Sprintf("k%d", i))
	}
	tests := []struct {
		name string
		txn  Txn
		code string
	}{
		{"too many ops", Txn{Success: many}, "too_many_operations"},
		{"too many compares", Txn{Compares: make([]Compare, MaxTxnCompares+1)}, "too_many_operations"},
		{"a key written twice", Txn{Success: []TxnOp{put("k"), put("j"), {Kind: TxnDelete, Key: []byte("k")}}}, "duplicate_key"},
		{"a put under a deleted prefix", Txn{Failure: []TxnOp{{Kind: TxnDeletePrefix, Key: []byte("p/")}, put("p/x")}}, "duplicate_key"},
		{"nested prefixes", Txn{Success: []TxnOp{{Kind: TxnDeletePrefix, Key: []byte("p/")}, {Kind: TxnDeletePrefix, Key: []byte("p/q")}}}, "duplicate_key"},
		{"an empty key", Txn{Success: []TxnOp{put("")}}, "invalid_txn"},
		{"an empty compare key", Txn{Compares: []Compare{{Target: TargetVersion, Op: CompareEqual}}}, "invalid_txn"},
		{"a bad target", Txn{Compares: []Compare{{Key: []byte("k"), Target: 9, Op: CompareEqual}}}, "invalid_txn"},
		{"a bad operator", Txn{Compares: []Compare{{Key: []byte("k"), Target: TargetVersion, Op: 0}}}, "invalid_txn"},
		{"a list limit of 0", Txn{Success: []TxnOp{{Kind: TxnList, Limit: 0}}}, "invalid_txn"},
		{"lists over the page limit together", Txn{Success: []TxnOp{{Kind: TxnList, Limit: 6000}, {Kind: TxnList, Key: []byte("a"), Limit: 6000}}}, "too_many_operations"},
		{"a get with a value", Txn{Success: []TxnOp{{Kind: TxnGet, Key: []byte("k"), Value: []byte("v")}}}, "invalid_txn"},
	}
	for _, tt := range tests {
		var te *TxnError
		err := tt.txn.Validate()
		if !errors.As(err, &te) || te.Code != tt.code || !errors.Is(err, ErrInvalidTxn) {
			t.Errorf("%s: %v, want a TxnError %s", tt.name, err, tt.code)
		}
	}
	// The same key in both branches, or read and written, is fine.
	ok := Txn{Success: []TxnOp{put("k"), {Kind: TxnGet, Key: []byte("k")}}, Failure: []TxnOp{put("k")}}
	if err := ok.Validate(); err != nil {
		t.Errorf("one write per branch: %v", err)
	}
}

// TestTxnCorruptEncoding: a damaged transaction entry is refused when it is
// decoded, never applied in part.
func TestTxnCorruptEncoding(t *testing.T) {
	cmd := Command{Op: OpTxn, Origin: 1, ID: 2, Txn: &Txn{
		Compares: []Compare{{Key: []byte("k"), Target: TargetValue, Op: CompareEqual, Value: []byte("v")}},
		Success:  []TxnOp{{Kind: TxnPut, Key: []byte("k"), Value: []byte("w")}},
	}}
	good := cmd.Marshal()
	if _, err := UnmarshalCommand(good); err != nil {
		t.Fatal(err)
	}
	for cut := len(good) - 1; cut > 2; cut-- {
		c, err := UnmarshalCommand(good[:cut])
		if err == nil && c.Txn != nil && len(c.Txn.Success) == 1 && bytes.Equal(c.Txn.Success[0].Value, []byte("w")) {
			t.Fatalf("cut at %d of %d decoded as the whole transaction", cut, len(good))
		}
	}
	bad := append(bytes.Clone(good), 0)
	if _, err := UnmarshalCommand(bad); !errors.Is(err, ErrCorruptCommand) {
		t.Fatalf("a trailing byte: %v", err)
	}
}
