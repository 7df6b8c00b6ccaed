package wire_test

import (
	"bytes"
	"errors"
	"net/http"
	"reflect"
	"testing"

	"github.com/raftkv/raftkv/wire"
)

func TestBatchRoundTrip(t *testing.T) {
	reqs := []wire.BatchRequest{
		{Method: "PUT", Target: "/v1/kv/a%2Fb?lease=7", Header: http.Header{"If-Match": {`"3"`}}, Body: []byte("value\x00\xff")},
		{Method: "GET", Target: "/v1/kv/a?consistency=serializable", Header: http.Header{}, Body: []byte{}},
	}
	got, err := wire.DecodeBatchRequests(wire.AppendBatchRequests(nil, reqs))
	if err != nil || !reflect.DeepEqual(got, reqs) {
		t.Fatalf("requests came back as %+v, %v; want %+v", got, err, reqs)
	}
	answers := []wire.BatchAnswer{
		{Status: 200, Header: http.Header{"Etag": {`"5"`}, "X-Raftkv-Revision": {"9"}}, Body: []byte("v")},
		{Status: 412, Header: http.Header{}, Body: []byte(`{"error":"x"}`)},
	}
	gotA, err := wire.DecodeBatchAnswers(wire.AppendBatchAnswers(nil, answers))
	if err != nil || !reflect.DeepEqual(gotA, answers) {
		t.Fatalf("answers came back as %+v, %v; want %+v", gotA, err, answers)
	}
}

// TestBatchRefusesDamage checks that every truncation of a batch and every
// flipped byte that breaks its framing is refused, and that nothing else
// (no panic, no huge allocation) happens.
func TestBatchRefusesDamage(t *testing.T) {
	b := wire.AppendBatchRequests(nil, []wire.BatchRequest{
		{Method: "PUT", Target: "/v1/kv/k", Header: http.Header{"If-None-Match": {"*"}}, Body: []byte("value")},
		{Method: "DELETE", Target: "/v1/kv/j", Body: nil},
	})
	for n := range len(b) {
		if _, err := wire.DecodeBatchRequests(b[:n]); !errors.Is(err, wire.ErrBadBatch) {
			t.Fatalf("a batch cut to %d of %d bytes: %v, want ErrBadBatch", n, len(b), err)
		}
	}
	if _, err := wire.DecodeBatchRequests(append(bytes.Clone(b), 0)); !errors.Is(err, wire.ErrBadBatch) {
		t.Fatalf("a batch with a byte after it: %v", err)
	}
	for i := range b {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			c := bytes.Clone(b)
			c[i] ^= x
			_, _ = wire.DecodeBatchRequests(c) // must not panic
		}
	}
}

func TestBatchBounds(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":                   {},
		"another version":         {2, 0},
		"too many requests":       {1, 0x81, 0x02}, // 257
		"a huge claimed length":   {1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"an overlong count":       {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"too many headers":        {1, 1, 3, 'G', 'E', 'T', 1, '/', 33},
		"an answer with status 0": nil,
	} {
		decode := func() error { _, err := wire.DecodeBatchRequests(b); return err }
		if b == nil {
			answer := wire.AppendBatchAnswers(nil, []wire.BatchAnswer{{Status: 0}})
			decode = func() error { _, err := wire.DecodeBatchAnswers(answer); return err }
		}
		if err := decode(); !errors.Is(err, wire.ErrBadBatch) {
			t.Errorf("%s: %v, want ErrBadBatch", name, err)
		}
	}
	full := make([]wire.BatchRequest, wire.MaxBatchRequests)
	for i := range full {
		full[i] = wire.BatchRequest{Method: "GET", Target: "/v1/kv/k"}
	}
	if got, err := wire.DecodeBatchRequests(wire.AppendBatchRequests(nil, full)); err != nil || len(got) != wire.MaxBatchRequests {
		t.Fatalf("a batch of the most requests allowed: %d, %v", len(got), err)
	}
}

func FuzzDecodeBatchRequests(f *testing.F) {
	f.Add(wire.AppendBatchRequests(nil, []wire.BatchRequest{{Method: "GET", Target: "/v1/kv/k", Body: []byte("x")}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		reqs, err := wire.DecodeBatchRequests(b)
		if err != nil {
			return
		}
		// What decodes encodes back to something that decodes the same.
		again, err := wire.DecodeBatchRequests(wire.AppendBatchRequests(nil, reqs))
		if err != nil || len(again) != len(reqs) {
			t.Fatalf("re-encoded batch: %d requests, %v; want %d", len(again), err, len(reqs))
		}
	})
}
