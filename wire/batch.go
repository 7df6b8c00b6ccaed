package wire

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/raftkv/raftkv/internal/codec"
)

// A batch (POST /v1/batch, docs/API.md "Batches") carries several key
// requests in one HTTP request and their answers in one response, so that a
// client with many requests in flight pays for one round of HTTP parsing
// and one read and one write system call on each side instead of one per
// request. Each request in it is answered on its own, as if it had come
// alone: a batch is not a transaction (POST /v1/txn is).
//
// The body is binary, not JSON: values are bytes, and base64 would cost a
// third more on the wire and a pass over each value on both sides. Every
// number is an unsigned varint; every string and byte slice is its length
// then its bytes (internal/codec, as raftkv's other binary formats).
//
//	request:  version=1 count { method target nheaders { name value } body }
//	response: version=1 count { status nheaders { name value } body }
//
// target is the escaped path with its query ("/v1/kv/a%2Fb?consistency=serializable").
// The answers are in the order of the requests.

// BatchContentType is the media type of a batch's request and response.
const BatchContentType = "application/vnd.raftkv.batch"

// batchVersion is the format's first byte.
const batchVersion = 1

// Bounds a decoder enforces, so that a hostile body cannot make it allocate
// more than the body's own size.
const (
	// MaxBatchRequests is the most requests one batch may carry.
	MaxBatchRequests = 256
	// maxBatchHeaders is the most headers one request or answer may carry:
	// a key request has a handful.
	maxBatchHeaders = 32
)

// BatchRequest is one request of a batch.
type BatchRequest struct {
	Method string
	Target string // escaped path and query, from "/"
	Header http.Header
	Body   []byte
}

// BatchAnswer is the answer to one request of a batch.
type BatchAnswer struct {
	Status int
	Header http.Header
	Body   []byte
}

// ErrBadBatch is wrapped by every decoding error.
var ErrBadBatch = errors.New("malformed batch")

// AppendBatchRequests appends the encoding of reqs to b.
func AppendBatchRequests(b []byte, reqs []BatchRequest) []byte {
	b = append(b, batchVersion)
	b = codec.AppendUvarint(b, uint64(len(reqs)))
	for _, r := range reqs {
		b = codec.AppendString(b, r.Method)
		b = codec.AppendString(b, r.Target)
		b = appendHeader(b, r.Header)
		b = codec.AppendBytes(b, r.Body)
	}
	return b
}

// AppendBatchAnswers appends the encoding of answers to b.
func AppendBatchAnswers(b []byte, answers []BatchAnswer) []byte {
	b = append(b, batchVersion)
	b = codec.AppendUvarint(b, uint64(len(answers)))
	for _, a := range answers {
		b = codec.AppendUvarint(b, uint64(a.Status))
		b = appendHeader(b, a.Header)
		b = codec.AppendBytes(b, a.Body)
	}
	return b
}

// DecodeBatchRequests decodes a batch's body. The bodies it returns alias b.
func DecodeBatchRequests(b []byte) ([]BatchRequest, error) {
	d := decoder{d: codec.NewDecoder(b)}
	n := d.count(MaxBatchRequests, "requests")
	if d.err != nil {
		return nil, d.err
	}
	reqs := make([]BatchRequest, n)
	for i := range reqs {
		r := &reqs[i]
		r.Method = string(d.bytes("method"))
		r.Target = string(d.bytes("target"))
		r.Header = d.header()
		r.Body = d.bytes("body")
		if d.err != nil {
			return nil, fmt.Errorf("request %d: %w", i, d.err)
		}
	}
	return reqs, d.end()
}

// DecodeBatchAnswers decodes a batch's response. The bodies alias b.
func DecodeBatchAnswers(b []byte) ([]BatchAnswer, error) {
	d := decoder{d: codec.NewDecoder(b)}
	n := d.count(MaxBatchRequests, "answers")
	if d.err != nil {
		return nil, d.err
	}
	answers := make([]BatchAnswer, n)
	for i := range answers {
		a := &answers[i]
		status := d.uvarint("status")
		if d.err == nil && (status < 100 || status > 999) {
			d.err = fmt.Errorf("%w: status %d", ErrBadBatch, status)
		}
		a.Status = int(status)
		a.Header = d.header()
		a.Body = d.bytes("body")
		if d.err != nil {
			return nil, fmt.Errorf("answer %d: %w", i, d.err)
		}
	}
	return answers, d.end()
}

// appendHeader writes each value of each header as its own pair.
func appendHeader(b []byte, h http.Header) []byte {
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	b = codec.AppendUvarint(b, uint64(n))
	for name, vs := range h {
		for _, v := range vs {
			b = codec.AppendString(b, name)
			b = codec.AppendString(b, v)
		}
	}
	return b
}

// decoder reads a batch with codec's decoder, saying what it was reading
// when the input ran out; the first error sticks and later reads return
// zero values.
type decoder struct {
	d   *codec.Decoder
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil && d.d.Err() != nil {
		d.err = fmt.Errorf("%w: %s: %v", ErrBadBatch, what, d.d.Err())
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v := d.d.Uvarint()
	d.fail(what)
	return v
}

// bytes reads a length and that many bytes, which must be there: a claimed
// length is never allocated before the bytes are seen.
func (d *decoder) bytes(what string) []byte {
	if d.err != nil {
		return nil
	}
	p := d.d.Bytes()
	d.fail(what)
	return p
}

// count reads the version byte and a count of at most limit.
func (d *decoder) count(limit int, what string) int {
	rest := d.d.Rest()
	if len(rest) == 0 || rest[0] != batchVersion {
		d.err = fmt.Errorf("%w: not a version %d batch", ErrBadBatch, batchVersion)
		return 0
	}
	d.d = codec.NewDecoder(rest[1:])
	n := d.uvarint(what)
	if d.err == nil && n > uint64(limit) {
		d.err = fmt.Errorf("%w: %d %s; the limit is %d", ErrBadBatch, n, what, limit)
	}
	return int(n)
}

func (d *decoder) header() http.Header {
	n := d.uvarint("header count")
	if d.err == nil && n > maxBatchHeaders {
		d.err = fmt.Errorf("%w: %d headers; the limit is %d", ErrBadBatch, n, maxBatchHeaders)
	}
	if d.err != nil || n == 0 {
		return http.Header{}
	}
	h := make(http.Header, n)
	for range n {
		name := http.CanonicalHeaderKey(string(d.bytes("header name")))
		value := string(d.bytes("header value"))
		if d.err != nil {
			return h
		}
		h[name] = append(h[name], value)
	}
	return h
}

// end fails when bytes are left over.
func (d *decoder) end() error {
	if rest := d.d.Rest(); d.err == nil && len(rest) > 0 {
		d.err = fmt.Errorf("%w: %d bytes after the last entry", ErrBadBatch, len(rest))
	}
	return d.err
}
