package kvstore

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/raftnode"
)

func TestCommandRoundTrip(t *testing.T) {
	cases := []Command{
		{Origin: 3, ID: 1, Op: OpPut, Key: []byte("k"), Value: []byte("v")},
		{ID: 1 << 63, Op: OpPut, Key: []byte("bin\x00\xff"), Value: []byte{}},
		{ID: 42, Op: OpPut, Key: []byte("k"), Value: bytes.Repeat([]byte("x"), 1<<16)},
		{ID: 7, Op: OpDelete, Key: []byte("gone")},
		{ID: 8, Op: OpPut, Cond: Condition{Kind: CondModRevision, ModRevision: 1 << 40}, Key: []byte("k"), Value: []byte("v")},
		{ID: 9, Op: OpPut, Cond: Condition{Kind: CondAbsent}, Key: []byte("k"), Value: []byte("v")},
		{ID: 10, Op: OpDelete, Cond: Condition{Kind: CondExists}, Key: []byte("k")},
		{ID: 11, Op: OpDeleteRange, Key: []byte("prefix/")},
		{ID: 12, Op: OpDeleteRange, Key: []byte{}},
		{ID: 13, Op: OpPut, Key: []byte("k"), Value: []byte("v"), Lease: 1<<53 - 1},
		{ID: 14, Op: OpLeaseGrant, TTL: 5000},
		{ID: 15, Op: OpLeaseGrant, Lease: 77, TTL: MaxLeaseTTL},
		{ID: 16, Op: OpLeaseRevoke, Lease: 77},
	}
	for _, c := range cases {
		got, err := UnmarshalCommand(c.Marshal())
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if got.Cond != c.Cond || got.Origin != c.Origin || got.ID != c.ID || got.Op != c.Op || !bytes.Equal(got.Key, c.Key) || !bytes.Equal(got.Value, c.Value) ||
			got.Lease != c.Lease || got.TTL != c.TTL {
			t.Fatalf("round trip of %+v gave %+v", c, got)
		}
	}
}

func TestUnmarshalCommandRejectsCorruptInput(t *testing.T) {
	good := (&Command{ID: 5, Op: OpPut, Key: []byte("key"), Value: []byte("v")}).Marshal()
	cases := map[string][]byte{
		"empty":                   nil,
		"one byte":                {commandVersion},
		"unknown version":         append([]byte{0}, good[1:]...),
		"unknown op":              {commandVersion, 99, 1, 1, 0},
		"missing id":              {commandVersion, byte(OpPut)},
		"missing id after origin": {commandVersion, byte(OpPut), 1},
		"key past the end":        {commandVersion, byte(OpPut), 1, 1, 10, 'a'},
		"delete with value":       append((&Command{ID: 1, Op: OpDelete, Key: []byte("k")}).Marshal(), 'x'),
		"delete with a lease":     (&Command{ID: 1, Op: OpDelete, Key: []byte("k"), Lease: 3}).Marshal(),
		"grant without a TTL":     (&Command{ID: 1, Op: OpLeaseGrant}).Marshal(),
		"grant with a key":        (&Command{ID: 1, Op: OpLeaseGrant, Key: []byte("k"), TTL: 1}).Marshal(),
		"revoke without a lease":  (&Command{ID: 1, Op: OpLeaseRevoke}).Marshal(),
		"lease op in version 1":   {commandVersionV1, byte(OpLeaseGrant), 1, 1, 0, 0, 1},
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := UnmarshalCommand(data); !errors.Is(err, ErrCorruptCommand) {
				t.Fatalf("err = %v, want ErrCorruptCommand", err)
			}
		})
	}
}

// TestNewerCommandStopsTheMember: an entry in a command version this build
// does not know was written by a newer member, which applies it; this one
// stops instead of skipping it and diverging, and applies nothing after it.
func TestNewerCommandStopsTheMember(t *testing.T) {
	good := (&Command{ID: 5, Op: OpPut, Key: []byte("key"), Value: []byte("v")}).Marshal()
	newer := append([]byte{commandVersion + 1}, good[1:]...)
	if _, err := UnmarshalCommand(newer); !errors.Is(err, ErrNewerCommand) {
		t.Fatalf("err = %v, want ErrNewerCommand", err)
	}
	commitC := make(chan raftnode.Commit, 1)
	kv := New(Config{Store: NewStore(), MemberID: 1, CommitC: commitC})
	later := (&Command{ID: 6, Op: OpPut, Key: []byte("later"), Value: []byte("v")}).Marshal()
	commitC <- raftnode.Commit{Entries: []raftnode.Entry{{Index: 1, Data: newer}, {Index: 2, Data: later}}, Index: 2, Done: make(chan struct{})}
	<-kv.Done()
	if err := kv.Err(); !errors.Is(err, ErrNewerCommand) || !strings.Contains(err.Error(), "log entry 1") {
		t.Fatalf("Err() = %v, want ErrNewerCommand at entry 1", err)
	}
	if kv.Store().Revision() != 0 {
		t.Fatalf("the store reached revision %d past the newer entry", kv.Store().Revision())
	}
	close(commitC)
}

func FuzzUnmarshalCommand(f *testing.F) {
	f.Add((&Command{ID: 5, Op: OpPut, Key: []byte("key"), Value: []byte("v")}).Marshal())
	f.Add((&Command{ID: 1, Op: OpDelete, Key: []byte("k")}).Marshal())
	f.Add([]byte{commandVersion, byte(OpPut), 0x80})
	f.Add((&Command{ID: 3, Op: OpPut, Key: []byte("k"), Value: []byte("v"), Lease: 9}).Marshal())
	f.Add((&Command{ID: 4, Op: OpLeaseGrant, Lease: 9, TTL: 2000}).Marshal())
	f.Add([]byte{commandVersionV1, byte(OpPut), 1, 1, 0, 1, 'k', 'v'})
	f.Add((&Command{ID: 2, Op: OpTxn, Txn: &Txn{
		Compares: []Compare{{Key: []byte("k"), Target: TargetModRevision, Op: CompareLess, Number: 9}},
		Success:  []TxnOp{{Kind: TxnPut, Key: []byte("k"), Value: []byte("v")}, {Kind: TxnList, Limit: 5}},
		Failure:  []TxnOp{{Kind: TxnDeletePrefix, Key: []byte("p")}},
	}}).Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := UnmarshalCommand(data)
		if err != nil {
			return
		}
		// Whatever decodes applies without a panic.
		s := NewStore()
		s.Apply(1, &c)
		// Whatever decodes must survive a re-encoding unchanged (the
		// bytes may differ: uvarints have non-minimal encodings).
		again, err := UnmarshalCommand(c.Marshal())
		if err != nil || again.Cond != c.Cond || again.Origin != c.Origin || again.ID != c.ID || again.Op != c.Op || !bytes.Equal(again.Key, c.Key) || !bytes.Equal(again.Value, c.Value) ||
			again.Lease != c.Lease || again.TTL != c.TTL ||
			(c.Txn != nil && !bytes.Equal(again.Txn.marshal(nil), c.Txn.marshal(nil))) {
			t.Fatalf("re-decoding %+v gave %+v, %v", c, again, err)
		}
	})
}

func FuzzRestore(f *testing.F) {
	s := NewStore()
	s.Apply(1, &Command{Op: OpPut, Key: []byte("a"), Value: []byte("1")})
	good, _ := s.Snapshot()
	f.Add(good)
	f.Add([]byte("RKV1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewStore()
		if err := r.Restore(data); err != nil {
			return
		}
		if _, err := r.Snapshot(); err != nil {
			t.Fatal(err)
		}
	})
}
