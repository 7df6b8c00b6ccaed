package kvstore

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func put(t *testing.T, s *Store, index uint64, key, value string) Result {
	t.Helper()
	return s.Apply(index, &Command{Op: OpPut, Key: []byte(key), Value: []byte(value)})
}

func TestApplyTracksRevisions(t *testing.T) {
	s := NewStore()
	put(t, s, 3, "a", "1")
	put(t, s, 5, "b", "x")
	put(t, s, 7, "a", "2")

	it, _, ok := s.Get([]byte("a"))
	if !ok {
		t.Fatal("key a missing")
	}
	want := Item{Value: []byte("2"), CreateRevision: 3, ModRevision: 7, Version: 2}
	if !equalItems(it, want) {
		t.Fatalf("a = %+v, want %+v", it, want)
	}
	if got := s.Revision(); got != 7 {
		t.Fatalf("revision = %d, want 7", got)
	}

	res := s.Apply(9, &Command{Op: OpDelete, Key: []byte("a")})
	if res.Err != nil || res.Revision != 9 {
		t.Fatalf("delete a = %+v, want revision 9", res)
	}
	if _, _, ok := s.Get([]byte("a")); ok {
		t.Fatal("a still present after delete")
	}
	// Recreating a key starts a new life: new create revision, version 1.
	put(t, s, 11, "a", "3")
	it, _, _ = s.Get([]byte("a"))
	if want := (Item{Value: []byte("3"), CreateRevision: 11, ModRevision: 11, Version: 1}); !equalItems(it, want) {
		t.Fatalf("recreated a = %+v, want %+v", it, want)
	}
}

func TestDeleteMissingChangesNothing(t *testing.T) {
	s := NewStore()
	put(t, s, 4, "a", "1")
	res := s.Apply(5, &Command{Op: OpDelete, Key: []byte("nope")})
	if !errors.Is(res.Err, ErrKeyNotFound) {
		t.Fatalf("err = %v, want ErrKeyNotFound", res.Err)
	}
	if res.Revision != 4 || s.Revision() != 4 {
		t.Fatalf("revision moved to %d/%d on a failed delete", res.Revision, s.Revision())
	}
}

func TestApplyCopiesValue(t *testing.T) {
	s := NewStore()
	buf := []byte("value")
	s.Apply(1, &Command{Op: OpPut, Key: []byte("k"), Value: buf})
	copy(buf, "XXXXX")
	if it, _, _ := s.Get([]byte("k")); string(it.Value) != "value" {
		t.Fatalf("stored value changed with the proposal buffer: %q", it.Value)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	s := NewStore()
	for i := range 100 {
		put(t, s, uint64(i+1), fmt.Sprintf("key-%03d", i%37), fmt.Sprintf("value-%d", i))
	}
	put(t, s, 101, "binary\x00key\xff", "\x00\x01\x02")
	put(t, s, 102, "empty", "")
	data, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}

	r := NewStore()
	put(t, r, 1, "stale", "gone after restore")
	if err := r.Restore(data); err != nil {
		t.Fatal(err)
	}
	if r.Revision() != s.Revision() || r.Len() != s.Len() {
		t.Fatalf("restored revision %d len %d, want %d %d", r.Revision(), r.Len(), s.Revision(), s.Len())
	}
	if _, _, ok := r.Get([]byte("stale")); ok {
		t.Fatal("restore kept a key that was not in the snapshot")
	}
	all, _, _ := s.List(nil, nil, 1000)
	for _, kv := range all {
		got, _, ok := r.Get(kv.Key)
		if !ok || !equalItems(got, kv.Item) {
			t.Fatalf("key %q: restored %+v, want %+v", kv.Key, got, kv.Item)
		}
	}
	// Equal stores encode to equal bytes, whatever the map order.
	again, _ := r.Snapshot()
	if !bytes.Equal(again, data) {
		t.Fatal("snapshot of the restored store differs from the original")
	}
}

func TestRestoreRejectsCorruptSnapshots(t *testing.T) {
	s := NewStore()
	put(t, s, 1, "a", "1")
	put(t, s, 2, "b", "2")
	good, _ := s.Snapshot()

	cases := map[string][]byte{
		"empty":          nil,
		"bad magic":      append([]byte("XXXX"), good[4:]...),
		"truncated":      good[:len(good)-3],
		"trailing bytes": append(append([]byte{}, good...), 0),
		"huge count":     append(append([]byte{}, snapshotMagic...), 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			r := NewStore()
			put(t, r, 9, "keep", "me")
			err := r.Restore(data)
			if !errors.Is(err, ErrCorruptSnapshot) {
				t.Fatalf("err = %v, want ErrCorruptSnapshot", err)
			}
			if _, _, ok := r.Get([]byte("keep")); !ok || r.Revision() != 9 {
				t.Fatal("a failed restore changed the store")
			}
		})
	}
}

func equalItems(a, b Item) bool {
	return bytes.Equal(a.Value, b.Value) && a.CreateRevision == b.CreateRevision &&
		a.ModRevision == b.ModRevision && a.Version == b.Version
}

func TestHashFollowsContents(t *testing.T) {
	a, b := NewStore(), NewStore()
	for i, k := range []string{"x", "y", "z"} {
		put(t, a, uint64(i+1), k, "v")
	}
	for i, k := range []string{"z", "x", "y"} { // other order, other revisions
		put(t, b, uint64(i+1), k, "v")
	}
	ha, ra := a.Hash()
	hb, _ := b.Hash()
	if ha == hb {
		t.Fatal("stores with different revisions hash alike")
	}
	data, _ := a.Snapshot()
	c := NewStore()
	if err := c.Restore(data); err != nil {
		t.Fatal(err)
	}
	if hc, rc := c.Hash(); hc != ha || rc != ra {
		t.Fatalf("restored store hashes %s@%d, original %s@%d", hc, rc, ha, ra)
	}
	put(t, c, 9, "x", "w")
	if hc, _ := c.Hash(); hc == ha {
		t.Fatal("a write did not change the hash")
	}
}

// TestSnapshotEncoder builds a snapshot from key-values and checks it
// restores to the store they came from, and that it refuses what no store
// could hold.
func TestSnapshotEncoder(t *testing.T) {
	s := NewStore()
	for i := range 30 {
		put(t, s, uint64(i+1), fmt.Sprintf("k%02d", i%11), fmt.Sprintf("v%d", i))
	}
	kvs, _, rev := s.List(nil, nil, 100)
	enc := NewSnapshotEncoder(rev, uint64(len(kvs)), nil, 0)
	for _, kv := range kvs {
		if err := enc.Add(kv); err != nil {
			t.Fatal(err)
		}
	}
	data, err := enc.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := s.Snapshot()
	if !bytes.Equal(data, want) {
		t.Fatal("the encoder's snapshot differs from the store's own")
	}
	item := Item{Value: []byte("v"), CreateRevision: 1, ModRevision: 2, Version: 2}
	for name, c := range map[string]struct {
		count uint64
		kvs   []KeyValue
	}{
		"out of order":       {2, []KeyValue{{Key: []byte("b"), Item: item}, {Key: []byte("a"), Item: item}}},
		"duplicate":          {2, []KeyValue{{Key: []byte("a"), Item: item}, {Key: []byte("a"), Item: item}}},
		"empty key":          {1, []KeyValue{{Key: nil, Item: item}}},
		"after the revision": {1, []KeyValue{{Key: []byte("a"), Item: Item{CreateRevision: 1, ModRevision: 9, Version: 1}}}},
		"created after mod":  {1, []KeyValue{{Key: []byte("a"), Item: Item{CreateRevision: 3, ModRevision: 2, Version: 1}}}},
		"no version":         {1, []KeyValue{{Key: []byte("a"), Item: Item{CreateRevision: 1, ModRevision: 1}}}},
		"too many":           {1, []KeyValue{{Key: []byte("a"), Item: item}, {Key: []byte("b"), Item: item}}},
		"too few":            {3, []KeyValue{{Key: []byte("a"), Item: item}}},
	} {
		enc := NewSnapshotEncoder(5, c.count, nil, 0)
		var err error
		for _, kv := range c.kvs {
			if err = enc.Add(kv); err != nil {
				break
			}
		}
		if _, berr := enc.Bytes(); !errors.Is(err, ErrCorruptSnapshot) && !errors.Is(berr, ErrCorruptSnapshot) {
			t.Errorf("%s: Add %v, Bytes %v; want ErrCorruptSnapshot", name, err, berr)
		}
	}
}
