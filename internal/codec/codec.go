// Package codec holds the few primitives shared by raftkv's binary formats
// (store commands, store snapshots, the raft snapshot envelope): uvarints and
// length-prefixed byte strings.
package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrTruncated means the input ended inside a value.
var ErrTruncated = errors.New("codec: truncated input")

// AppendBytes appends b with a uvarint length prefix.
func AppendBytes(buf, b []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(b)))
	return append(buf, b...)
}

// AppendString appends s with a uvarint length prefix.
func AppendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// Decoder reads uvarints and length-prefixed byte strings from a buffer. It
// remembers the first error, so a caller can read a whole record and check
// Err once.
type Decoder struct {
	buf []byte
	err error
}

// NewDecoder returns a decoder reading buf.
func NewDecoder(buf []byte) *Decoder { return &Decoder{buf: buf} }

// Err returns the first error met.
func (d *Decoder) Err() error { return d.err }

// Rest returns the bytes not read yet.
func (d *Decoder) Rest() []byte { return d.buf }

// Uvarint reads one uvarint.
func (d *Decoder) Uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad uvarint", ErrTruncated)
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

// Bytes reads a length-prefixed byte string. The result aliases the buffer.
func (d *Decoder) Bytes() []byte {
	n := d.Uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.buf)) {
		d.err = fmt.Errorf("%w: length %d exceeds the %d bytes left", ErrTruncated, n, len(d.buf))
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}

// AppendUvarint appends v as a uvarint.
func AppendUvarint(buf []byte, v uint64) []byte { return binary.AppendUvarint(buf, v) }
