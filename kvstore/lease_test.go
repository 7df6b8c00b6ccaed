package kvstore

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

func grant(t *testing.T, s *Store, index, id uint64, ttl int64) Lease {
	t.Helper()
	res := s.Apply(index, &Command{Op: OpLeaseGrant, Lease: id, TTL: ttl})
	if res.Err != nil {
		t.Fatalf("grant %d at %d: %v", id, index, res.Err)
	}
	return res.Lease.Lease
}

func putLease(t *testing.T, s *Store, index uint64, key, value string, lease uint64) Result {
	t.Helper()
	return s.Apply(index, &Command{Op: OpPut, Key: []byte(key), Value: []byte(value), Lease: lease})
}

// TestLeaseGrantChoosesIDs checks that the store chooses the grant's index
// as the id, or the next free one, and refuses an id that is taken; a grant
// changes no key, so the revision stays.
func TestLeaseGrantChoosesIDs(t *testing.T) {
	s := NewStore()
	put(t, s, 1, "a", "1")
	if l := grant(t, s, 2, 0, 1000); l.ID != 2 || l.TTL != 1000 {
		t.Fatalf("auto grant at 2 = %+v, want id 2", l)
	}
	grant(t, s, 3, 4, 1000) // a client takes the id index 4 would get
	if l := grant(t, s, 4, 0, 1000); l.ID != 5 {
		t.Fatalf("auto grant at 4 with 4 taken = %d, want 5", l.ID)
	}
	res := s.Apply(6, &Command{Op: OpLeaseGrant, Lease: 4, TTL: 1000})
	if !errors.Is(res.Err, ErrLeaseExists) {
		t.Fatalf("grant of a taken id: %v, want ErrLeaseExists", res.Err)
	}
	if s.Revision() != 1 {
		t.Fatalf("revision %d after grants, want 1 (no key changed)", s.Revision())
	}
	if got := s.Leases(); len(got) != 3 || got[0].ID != 2 || got[1].ID != 4 || got[2].ID != 5 {
		t.Fatalf("leases %+v, want 2, 4, 5", got)
	}
}

// TestLeaseAttachAndRevoke checks that puts attach and detach keys, and
// that a revoke deletes exactly the attached keys in one change, in key
// order.
func TestLeaseAttachAndRevoke(t *testing.T) {
	s := NewStore()
	l := grant(t, s, 1, 0, 5000)
	other := grant(t, s, 2, 0, 5000)
	putLease(t, s, 3, "svc/b", "b", l.ID)
	putLease(t, s, 4, "svc/a", "a", l.ID)
	putLease(t, s, 5, "svc/c", "c", l.ID)
	putLease(t, s, 6, "svc/c", "c2", 0)       // detached by a put without the lease
	putLease(t, s, 7, "svc/d", "d", other.ID) // another lease's
	putLease(t, s, 8, "svc/e", "e", l.ID)
	s.Apply(9, &Command{Op: OpDelete, Key: []byte("svc/e")})
	putLease(t, s, 10, "svc/e", "e2", 0) // re-created without a lease

	if res := putLease(t, s, 11, "svc/x", "x", 999); !errors.Is(res.Err, ErrLeaseNotFound) {
		t.Fatalf("put to an unknown lease: %v, want ErrLeaseNotFound", res.Err)
	}
	if _, _, ok := s.Get([]byte("svc/x")); ok {
		t.Fatal("a put to an unknown lease stored its key")
	}
	it, _, _ := s.Get([]byte("svc/a"))
	if it.Lease != l.ID {
		t.Fatalf("svc/a lease %d, want %d", it.Lease, l.ID)
	}
	info, _, _ := s.Lease(l.ID)
	if want := []string{"svc/a", "svc/b"}; !slices.Equal(info.Keys, want) {
		t.Fatalf("attached %q, want %q", info.Keys, want)
	}

	res := s.Apply(12, &Command{Op: OpLeaseRevoke, Lease: l.ID})
	if res.Err != nil || res.Revision != 12 || res.Deleted != 2 {
		t.Fatalf("revoke: %+v", res)
	}
	var evs []string
	for _, ev := range res.Change.Events {
		if ev.Type != EventDelete || ev.Item.ModRevision != 12 {
			t.Fatalf("event %+v, want a delete at 12", ev)
		}
		evs = append(evs, string(ev.Key))
	}
	if want := []string{"svc/a", "svc/b"}; !slices.Equal(evs, want) {
		t.Fatalf("revoke deleted %q, want %q", evs, want)
	}
	for _, k := range []string{"svc/c", "svc/d", "svc/e"} {
		if _, _, ok := s.Get([]byte(k)); !ok {
			t.Fatalf("revoke deleted %s, which was not attached", k)
		}
	}
	if res := s.Apply(13, &Command{Op: OpLeaseRevoke, Lease: l.ID}); !errors.Is(res.Err, ErrLeaseNotFound) || res.Revision != 12 {
		t.Fatalf("second revoke: %+v, want ErrLeaseNotFound at 12", res)
	}
	// A lease without keys is revoked without a new revision.
	if res := s.Apply(14, &Command{Op: OpLeaseRevoke, Lease: grant(t, s, 13, 0, 5000).ID}); res.Err != nil || res.Revision != 12 {
		t.Fatalf("revoke of an empty lease: %+v, want revision 12", res)
	}
}

// TestLeasesInTransactions checks a transaction's put with a lease, a
// compare on the lease, and that a put to an unknown lease fails the whole
// transaction.
func TestLeasesInTransactions(t *testing.T) {
	s := NewStore()
	l := grant(t, s, 1, 0, 5000)
	res := applyTxnCmd(t, s, 2, &Txn{
		Compares: []Compare{{Key: []byte("k"), Target: TargetLease, Op: CompareEqual, Number: 0}},
		Success:  []TxnOp{{Kind: TxnPut, Key: []byte("k"), Value: []byte("v"), Lease: l.ID}},
	})
	if res.Err != nil || !res.Txn.Succeeded {
		t.Fatalf("txn: %+v", res)
	}
	res = applyTxnCmd(t, s, 3, &Txn{
		Compares: []Compare{{Key: []byte("k"), Target: TargetLease, Op: CompareEqual, Number: l.ID}},
		Success:  []TxnOp{{Kind: TxnPut, Key: []byte("j"), Value: []byte("v")}, {Kind: TxnPut, Key: []byte("m"), Value: []byte("v"), Lease: 42}},
	})
	if !errors.Is(res.Err, ErrLeaseNotFound) || s.Revision() != 2 {
		t.Fatalf("txn with an unknown lease: %v at %d, want ErrLeaseNotFound at 2", res.Err, s.Revision())
	}
	if _, _, ok := s.Get([]byte("j")); ok {
		t.Fatal("a failed transaction wrote part of its branch")
	}
	if info, _, _ := s.Lease(l.ID); !slices.Equal(info.Keys, []string{"k"}) {
		t.Fatalf("attached %q, want k", info.Keys)
	}
	if err := (&Txn{Success: []TxnOp{{Kind: TxnDelete, Key: []byte("k"), Lease: 1}}}).Validate(); err == nil {
		t.Fatal("a delete with a lease validated")
	}
}

// TestLeasesSurviveSnapshots checks that a snapshot carries the leases and
// the keys' leases, that the restored store revokes the same keys, and that
// a version 1 snapshot (no leases) still restores.
func TestLeasesSurviveSnapshots(t *testing.T) {
	s := NewStore()
	l := grant(t, s, 1, 0, 5000)
	grant(t, s, 2, 77, 9000)
	putLease(t, s, 3, "a", "1", l.ID)
	putLease(t, s, 4, "b", "2", 0)
	data, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	r := NewStore()
	if err := r.Restore(data); err != nil {
		t.Fatal(err)
	}
	if h1, _ := s.Hash(); func() string { h2, _ := r.Hash(); return h2 }() != h1 {
		t.Fatal("the restored store hashes differently")
	}
	if got := r.Leases(); !slices.Equal(got, []Lease{{ID: 1, TTL: 5000}, {ID: 77, TTL: 9000}}) {
		t.Fatalf("restored leases %+v", got)
	}
	if res := r.Apply(5, &Command{Op: OpLeaseRevoke, Lease: l.ID}); res.Deleted != 1 {
		t.Fatalf("revoke after restore deleted %d keys, want 1", res.Deleted)
	}

	// A hash covers the leases: a store without lease 77 differs.
	t1 := NewStore()
	grant(t, t1, 1, 0, 5000)
	putLease(t, t1, 3, "a", "1", l.ID)
	putLease(t, t1, 4, "b", "2", 0)
	if h1, _ := s.Hash(); func() string { h, _ := t1.Hash(); return h }() == h1 {
		t.Fatal("stores with different leases hash alike")
	}

	v1 := append([]byte("RKV1"), 4, 1) // revision 4, one key
	v1 = append(v1, 1, 'k', 1, 'v', 2, 3, 2)
	old := NewStore()
	if err := old.Restore(v1); err != nil {
		t.Fatalf("version 1 snapshot: %v", err)
	}
	if it, rev, ok := old.Get([]byte("k")); !ok || rev != 4 || it.ModRevision != 3 || it.Lease != 0 || !bytes.Equal(it.Value, []byte("v")) {
		t.Fatalf("version 1 snapshot restored %+v at %d", it, rev)
	}

	// A key attached to a lease the table does not hold is corrupt.
	// The table is 7 bytes: count 2, then 1 and 5000, 77 and 9000.
	orphan := append(bytes.Clone(data[:len(data)-7]), 0)
	if err := NewStore().Restore(orphan); !errors.Is(err, ErrCorruptSnapshot) || !strings.Contains(err.Error(), "not in the lease table") {
		t.Fatalf("a key on a missing lease: %v, want ErrCorruptSnapshot", err)
	}
}
