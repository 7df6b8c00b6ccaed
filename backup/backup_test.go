package backup

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/raftkv/raftkv/kvstore"
)

// testStore is a store with a few keys written, overwritten and deleted, so
// that revisions, versions and gaps are all there.
func testStore(t *testing.T) *kvstore.Store {
	t.Helper()
	s := kvstore.NewStore()
	index := uint64(0)
	apply := func(cmd kvstore.Command) {
		index++
		if res := s.Apply(index, &cmd); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	for i := range 50 {
		apply(kvstore.Command{Op: kvstore.OpPut, Key: fmt.Appendf(nil, "key-%02d", i%20), Value: fmt.Appendf(nil, "value-%d", i)})
	}
	apply(kvstore.Command{Op: kvstore.OpPut, Key: []byte("binary\x00\xff"), Value: []byte{0, 1, 2}})
	apply(kvstore.Command{Op: kvstore.OpPut, Key: []byte("empty"), Value: []byte{}})
	apply(kvstore.Command{Op: kvstore.OpDelete, Key: []byte("key-03")})
	apply(kvstore.Command{Op: kvstore.OpLeaseGrant, TTL: 5000})
	lease := index
	apply(kvstore.Command{Op: kvstore.OpLeaseGrant, Lease: 900, TTL: 7000})
	apply(kvstore.Command{Op: kvstore.OpPut, Key: []byte("svc/a"), Value: []byte("a"), Lease: lease})
	apply(kvstore.Command{Op: kvstore.OpPut, Key: []byte("svc/b"), Value: []byte("b"), Lease: 900})
	return s
}

func encode(t *testing.T, s *kvstore.Store) []byte {
	t.Helper()
	enc, err := NewEncoder(Header{ClusterID: "abc", MemberID: 2, CreatedAt: time.Unix(1, 0).UTC(),
		Members: []Member{{ID: 1, PeerURLs: []string{"http://127.0.0.1:1"}}}}, s.Freeze())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := enc.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || enc.Size() != n {
		t.Fatalf("WriteTo says %d bytes and Size %d; %d were written", n, enc.Size(), buf.Len())
	}
	return buf.Bytes()
}

// TestRoundTrip checks that a backup reads back as the store it was taken
// from: every key with its revisions, the header, and the store's own hash.
func TestRoundTrip(t *testing.T) {
	s := testStore(t)
	data := encode(t, s)
	var got []kvstore.KeyValue
	info, err := Verify(bytes.NewReader(data), func(kv kvstore.KeyValue) error {
		got = append(got, kv)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want, _, _ := s.List(nil, nil, 1000)
	if !slices.EqualFunc(got, want, func(a, b kvstore.KeyValue) bool {
		return bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Value, b.Value) && a.CreateRevision == b.CreateRevision &&
			a.ModRevision == b.ModRevision && a.Version == b.Version && a.Lease == b.Lease
	}) {
		t.Fatalf("read back %v, want %v", got, want)
	}
	hash, rev := s.Hash()
	if info.StateHash != hash || info.Revision != rev || info.Keys != uint64(s.Len()) || info.Size != int64(len(data)) {
		t.Fatalf("info %+v; the store has hash %s at revision %d with %d keys, the file %d bytes", info, hash, rev, s.Len(), len(data))
	}
	if info.ClusterID != "abc" || info.MemberID != 2 || len(info.Members) != 1 || !info.CreatedAt.Equal(time.Unix(1, 0)) ||
		!slices.Equal(info.Leases, []Lease{{ID: 54, TTLMs: 5000}, {ID: 900, TTLMs: 7000}}) {
		t.Fatalf("header %+v", info.Header)
	}
	// A snapshot encoded from what was read restores to the same store.
	enc := kvstore.NewSnapshotEncoder(info.Revision, info.Keys, info.KVLeases(), 0)
	for _, kv := range got {
		if err := enc.Add(kv); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := enc.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	r := kvstore.NewStore()
	if err := r.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if h, rv := r.Hash(); h != hash || rv != rev {
		t.Fatalf("restored store hashes %s at %d, want %s at %d", h, rv, hash, rev)
	}
	if l, _, ok := r.Lease(900); !ok || !slices.Equal(l.Keys, []string{"svc/b"}) {
		t.Fatalf("restored lease 900 = %+v, %v", l, ok)
	}
}

// TestReadsVersion1 checks that a backup of the format before leases,
// version 1 (no lease in the records, none in the header), still reads.
func TestReadsVersion1(t *testing.T) {
	hdr := []byte(`{"revision":3,"keys":1,"cluster_id":"abc","member_id":1,"members":[],"created_at":"2026-01-01T00:00:00Z"}`)
	data := append([]byte(Magic), 1, byte(len(hdr)))
	data = append(data, hdr...)
	data = append(data, 1, 'k', 1, 'v', 2, 3, 2) // create 2, mod 3, version 2
	sum := sha256.Sum256(data)
	data = append(data, sum[:]...)
	var got []kvstore.KeyValue
	info, err := Verify(bytes.NewReader(data), func(kv kvstore.KeyValue) error { got = append(got, kv); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || string(got[0].Key) != "k" || got[0].ModRevision != 3 || got[0].Version != 2 || got[0].Lease != 0 || info.Revision != 3 {
		t.Fatalf("version 1 backup read as %+v, %+v", got, info)
	}
}

// TestEmptyStore: a backup of an empty store is valid.
func TestEmptyStore(t *testing.T) {
	data := encode(t, kvstore.NewStore())
	info, err := Verify(bytes.NewReader(data), nil)
	if err != nil || info.Keys != 0 || info.Revision != 0 {
		t.Fatalf("Verify: %+v, %v", info, err)
	}
}

// TestTruncatedAnywhere cuts the file at every length: each is refused as
// truncated (or, inside the magic, as no backup at all), never accepted.
func TestTruncatedAnywhere(t *testing.T) {
	data := encode(t, testStore(t))
	for n := range len(data) {
		_, err := Verify(bytes.NewReader(data[:n]), nil)
		want := ErrTruncated
		if n < len(Magic) {
			want = ErrNotBackup
		}
		if !errors.Is(err, want) {
			t.Fatalf("cut at %d of %d: %v, want %v", n, len(data), err, want)
		}
	}
}

// TestFlippedByteAnywhere flips one bit of every byte in turn: no damaged
// file is accepted.
func TestFlippedByteAnywhere(t *testing.T) {
	data := encode(t, testStore(t))
	for i := range data {
		bad := bytes.Clone(data)
		bad[i] ^= 0x10
		_, err := Verify(bytes.NewReader(bad), nil)
		if err == nil {
			t.Fatalf("a flipped byte at %d of %d was accepted", i, len(data))
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrNotBackup) && !errors.Is(err, ErrUnsupportedVersion) {
			t.Fatalf("a flipped byte at %d: %v, want one of the package's errors", i, err)
		}
	}
}

func TestTrailingData(t *testing.T) {
	data := append(encode(t, testStore(t)), 0)
	if _, err := Verify(bytes.NewReader(data), nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("data after the checksum: %v, want ErrCorrupt", err)
	}
}

// TestHugeLength: a length claiming far more than the file holds ends in a
// truncation error, without allocating what it claims.
func TestHugeLength(t *testing.T) {
	data := []byte(Magic)
	data = append(data, Version)
	data = append(data, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f) // a 2^56-byte header
	if _, err := Verify(bytes.NewReader(data), nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a huge header length: %v, want ErrCorrupt", err)
	}
	hdr := `{"keys":1,"revision":5}`
	rec := append([]byte(Magic), Version, byte(len(hdr)))
	rec = append(rec, hdr...)
	rec = append(rec, 0xff, 0xff, 0xff, 0xff, 0x0f) // a 4 GiB key
	rec = append(rec, make([]byte, 100)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := Verify(bytes.NewReader(rec), nil); !errors.Is(err, ErrTruncated) {
		t.Fatalf("a 4 GiB key in a short file: %v, want ErrTruncated", err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Fatalf("reading it allocated %d bytes", grew)
	}
}

func TestOtherVersion(t *testing.T) {
	data := encode(t, testStore(t))
	data[len(Magic)] = Version + 1
	if _, err := Verify(bytes.NewReader(data), nil); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("version %d: %v", Version+1, err)
	}
}
