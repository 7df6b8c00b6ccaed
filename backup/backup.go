// Package backup is raftkv's backup file: a consistent copy of one store at
// one revision, with the member table it was taken from, written by
// GET /v1/snapshot and read by `raftkv snapshot status` and `raftkv snapshot
// restore`. The server, the CLI and the tests share this one codec, so the
// format has a single definition; docs/BACKUP.md describes it for readers in
// other languages.
//
// Version 2 is, in order:
//
//	magic     8 bytes, "RAFTKVBK"
//	version   uvarint, 2
//	header    uvarint length, then that many bytes of JSON (Header), which
//	          holds the leases
//	keys      Header.Keys records, in strictly increasing key order, each:
//	          uvarint length + key, uvarint length + value,
//	          uvarint create revision, uvarint mod revision, uvarint version,
//	          uvarint lease (0: none; else one of the header's leases)
//	checksum  32 bytes, SHA-256 of every byte before it
//
// Version 1, which had no leases, is still read.
//
// A reader trusts nothing before the checksum holds: a record's lengths are
// read as data arrives rather than allocated up front, so a damaged length
// ends in a truncation error instead of a huge allocation.
package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/raftkv/raftkv/kvstore"
)

// Magic starts every backup file.
const Magic = "RAFTKVBK"

// Version is the format version this package writes; it reads it and
// version 1.
const Version = 2

// maxHeaderBytes bounds the JSON header: a member table, a few fields.
const maxHeaderBytes = 16 << 20

// checksumSize is the SHA-256 trailer's size.
const checksumSize = sha256.Size

// Errors a reader returns, wrapped with where the file went wrong.
var (
	// ErrNotBackup: the file does not start with Magic.
	ErrNotBackup = errors.New("not a raftkv backup")
	// ErrUnsupportedVersion: a version this build does not read.
	ErrUnsupportedVersion = errors.New("unsupported backup format version")
	// ErrTruncated: the file ends before its checksum.
	ErrTruncated = errors.New("backup is truncated")
	// ErrCorrupt: the checksum does not match, or the contents are not
	// what any store could hold.
	ErrCorrupt = errors.New("backup is corrupt")
)

// Member is a member of the cluster a backup was taken from.
type Member struct {
	ID         uint64   `json:"id"`
	Name       string   `json:"name,omitempty"`
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls,omitempty"`
	IsLearner  bool     `json:"is_learner,omitempty"`
}

// Header describes a backup.
type Header struct {
	// Revision is the store revision the backup holds: every write up to it
	// and none after.
	Revision uint64 `json:"revision"`
	// Keys is the number of key records that follow.
	Keys uint64 `json:"keys"`
	// ClusterID (hex, as /v1/status writes it) and MemberID say where the
	// backup was taken; Members is that cluster's member table then.
	ClusterID string   `json:"cluster_id"`
	MemberID  uint64   `json:"member_id"`
	Members   []Member `json:"members"`
	// CreatedAt is when the server froze the store.
	CreatedAt time.Time `json:"created_at"`
	// ServerVersion is the version of the raftkv that wrote it.
	ServerVersion string `json:"server_version,omitempty"`
	// Leases are the leases the store held, in id order. A restored
	// cluster's leader gives each one its whole TTL again.
	Leases []Lease `json:"leases,omitempty"`
}

// Lease is a lease of the store: its id and TTL in milliseconds.
type Lease struct {
	ID    uint64 `json:"id"`
	TTLMs int64  `json:"ttl_ms"`
}

// KVLeases is the leases in kvstore's terms.
func (h Header) KVLeases() []kvstore.Lease {
	ls := make([]kvstore.Lease, len(h.Leases))
	for i, l := range h.Leases {
		ls[i] = kvstore.Lease{ID: l.ID, TTL: l.TTLMs}
	}
	return ls
}

// Source is what a backup is written from: kvstore.Frozen.
type Source interface {
	Revision() uint64
	Len() int
	Ascend(fn func(kvstore.KeyValue) bool)
	Leases() []kvstore.Lease
}

// Encoder writes one backup of a source.
type Encoder struct {
	prefix []byte // magic, version and header
	src    Source
}

// NewEncoder prepares a backup of src described by hdr; hdr's Revision and
// Keys are taken from src.
func NewEncoder(hdr Header, src Source) (*Encoder, error) {
	hdr.Revision, hdr.Keys, hdr.Leases = src.Revision(), uint64(src.Len()), nil
	for _, l := range src.Leases() {
		hdr.Leases = append(hdr.Leases, Lease{ID: l.ID, TTLMs: l.TTL})
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return nil, fmt.Errorf("encode backup header: %w", err)
	}
	prefix := append([]byte(Magic), Version)
	prefix = binary.AppendUvarint(prefix, uint64(len(js)))
	return &Encoder{prefix: append(prefix, js...), src: src}, nil
}

// Size is the number of bytes WriteTo writes, for a Content-Length and a
// progress line. It walks every key, which is cheap next to writing them.
func (e *Encoder) Size() int64 {
	n := int64(len(e.prefix)) + checksumSize
	e.src.Ascend(func(kv kvstore.KeyValue) bool {
		n += int64(recordSize(kv))
		return true
	})
	return n
}

// WriteTo writes the backup to w, buffered.
func (e *Encoder) WriteTo(w io.Writer) (int64, error) {
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(w, h)}
	bw := bufio.NewWriterSize(cw, 64<<10)
	bw.Write(e.prefix)
	var buf []byte
	var err error
	e.src.Ascend(func(kv kvstore.KeyValue) bool {
		buf = appendRecord(buf[:0], kv)
		_, err = bw.Write(buf)
		return err == nil
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return cw.n, err
	}
	n, err := w.Write(h.Sum(nil))
	return cw.n + int64(n), err
}

func appendRecord(buf []byte, kv kvstore.KeyValue) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(kv.Key)))
	buf = append(buf, kv.Key...)
	buf = binary.AppendUvarint(buf, uint64(len(kv.Value)))
	buf = append(buf, kv.Value...)
	buf = binary.AppendUvarint(buf, kv.CreateRevision)
	buf = binary.AppendUvarint(buf, kv.ModRevision)
	buf = binary.AppendUvarint(buf, kv.Version)
	return binary.AppendUvarint(buf, kv.Lease)
}

func recordSize(kv kvstore.KeyValue) int {
	return uvarintLen(uint64(len(kv.Key))) + len(kv.Key) + uvarintLen(uint64(len(kv.Value))) + len(kv.Value) +
		uvarintLen(kv.CreateRevision) + uvarintLen(kv.ModRevision) + uvarintLen(kv.Version) + uvarintLen(kv.Lease)
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Reader reads a backup record by record, checking it as it goes.
type Reader struct {
	src     *hashingReader
	version uint64
	header  Header
	leases  map[uint64]bool
	left    uint64 // records not read yet
	prev    []byte // the last key read
	err     error  // sticky: the first error met
}

// NewReader reads the magic, version and header of the backup in r.
func NewReader(r io.Reader) (*Reader, error) {
	src := &hashingReader{r: bufio.NewReaderSize(r, 64<<10), h: sha256.New()}
	rd := &Reader{src: src}
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(src, magic); err != nil || string(magic) != Magic {
		return nil, fmt.Errorf("%w: it does not start with %q", ErrNotBackup, Magic)
	}
	version, err := binary.ReadUvarint(src)
	if err != nil {
		return nil, rd.fail(err, "the version")
	}
	if version != Version && version != 1 {
		return nil, fmt.Errorf("%w: %d (this raftkv reads versions 1 and %d)", ErrUnsupportedVersion, version, Version)
	}
	rd.version = version
	n, err := binary.ReadUvarint(src)
	if err == nil && n > maxHeaderBytes {
		err = fmt.Errorf("%w: a %d-byte header", ErrCorrupt, n)
	}
	if err != nil {
		return nil, rd.fail(err, "the header's length")
	}
	js, err := readN(src, n)
	if err != nil {
		return nil, rd.fail(err, "the header")
	}
	if err := json.Unmarshal(js, &rd.header); err != nil {
		return nil, fmt.Errorf("%w: header at byte %d: %w", ErrCorrupt, src.n-int64(n), err)
	}
	rd.leases = make(map[uint64]bool, len(rd.header.Leases))
	for i, l := range rd.header.Leases {
		if l.ID == 0 || l.ID > kvstore.MaxLeaseID || l.TTLMs < 1 || l.TTLMs > kvstore.MaxLeaseTTL || (i > 0 && l.ID <= rd.header.Leases[i-1].ID) {
			return nil, fmt.Errorf("%w: header: lease %d (TTL %d ms) is out of range or out of order", ErrCorrupt, l.ID, l.TTLMs)
		}
		rd.leases[l.ID] = true
	}
	rd.left = rd.header.Keys
	return rd, nil
}

// Header is the backup's header. Its contents are only known to be what the
// server wrote once Next has returned io.EOF.
func (r *Reader) Header() Header { return r.header }

// Offset is the number of bytes read so far.
func (r *Reader) Offset() int64 { return r.src.n }

// Next returns the next key-value, in key order. After the last one it
// checks the checksum and that nothing follows it, and returns io.EOF only
// when both hold. The returned bytes are the caller's.
func (r *Reader) Next() (kvstore.KeyValue, error) {
	if r.err != nil {
		return kvstore.KeyValue{}, r.err
	}
	if r.left == 0 {
		r.err = r.finish()
		return kvstore.KeyValue{}, r.err
	}
	at := r.src.n
	kv, err := r.record()
	if err != nil {
		r.err = r.fail(err, fmt.Sprintf("key %d of %d (byte %d)", r.header.Keys-r.left+1, r.header.Keys, at))
		return kvstore.KeyValue{}, r.err
	}
	r.left--
	r.prev = kv.Key
	return kv, nil
}

func (r *Reader) record() (kvstore.KeyValue, error) {
	var kv kvstore.KeyValue
	var err error
	if kv.Key, err = r.bytes(); err != nil {
		return kv, err
	}
	if kv.Value, err = r.bytes(); err != nil {
		return kv, err
	}
	fields := []*uint64{&kv.CreateRevision, &kv.ModRevision, &kv.Version}
	if r.version >= 2 {
		fields = append(fields, &kv.Lease)
	}
	for _, v := range fields {
		if *v, err = binary.ReadUvarint(r.src); err != nil {
			return kv, err
		}
	}
	switch {
	case len(kv.Key) == 0:
		return kv, fmt.Errorf("%w: an empty key", ErrCorrupt)
	case r.prev != nil && bytes.Compare(r.prev, kv.Key) >= 0:
		return kv, fmt.Errorf("%w: key %q is out of order", ErrCorrupt, kv.Key)
	case kv.CreateRevision == 0 || kv.CreateRevision > kv.ModRevision || kv.ModRevision > r.header.Revision || kv.Version == 0:
		return kv, fmt.Errorf("%w: key %q has revisions create %d, mod %d, version %d in a backup at revision %d",
			ErrCorrupt, kv.Key, kv.CreateRevision, kv.ModRevision, kv.Version, r.header.Revision)
	case kv.Lease != 0 && !r.leases[kv.Lease]:
		return kv, fmt.Errorf("%w: key %q is attached to lease %d, which the header does not hold", ErrCorrupt, kv.Key, kv.Lease)
	}
	return kv, nil
}

func (r *Reader) bytes() ([]byte, error) {
	n, err := binary.ReadUvarint(r.src)
	if err != nil {
		return nil, err
	}
	return readN(r.src, n)
}

// finish checks the checksum after the last record.
func (r *Reader) finish() error {
	want := r.src.sum()
	got := make([]byte, checksumSize)
	at := r.src.n
	if _, err := io.ReadFull(r.src, got); err != nil {
		return r.fail(err, fmt.Sprintf("the checksum (byte %d)", at))
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%w: the checksum at byte %d is %x, the contents hash to %x", ErrCorrupt, at, got, want)
	}
	if n, _ := r.src.r.Read(make([]byte, 1)); n > 0 {
		return fmt.Errorf("%w: data follows the checksum at byte %d", ErrCorrupt, r.src.n)
	}
	return io.EOF
}

// fail says what was being read when err happened: an early end is a
// truncation, anything else damage.
func (r *Reader) fail(err error, what string) error {
	switch {
	case errors.Is(err, ErrCorrupt):
		return fmt.Errorf("reading %s: %w", what, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: the file ends at byte %d, inside %s", ErrTruncated, r.src.n, what)
	case r.src.err == nil:
		// Not the file's reader failing: a uvarint too long for 64 bits.
		return fmt.Errorf("%w: a bad number in %s", ErrCorrupt, what)
	}
	return fmt.Errorf("reading %s: %w", what, err)
}

// readN reads n bytes, growing the buffer as they arrive, so a damaged
// length costs no more memory than the file holds.
func readN(r io.Reader, n uint64) ([]byte, error) {
	const chunk = 1 << 20
	if n <= chunk {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	var buf bytes.Buffer
	got, err := io.CopyN(&buf, r, int64(min(n, 1<<62)))
	if err == io.EOF && uint64(got) < n {
		err = io.ErrUnexpectedEOF
	}
	return buf.Bytes(), err
}

// hashingReader hashes and counts the bytes its reader consumes. Single
// bytes (uvarints) are gathered before they are hashed: a hash write per
// byte would cost more than the rest of reading.
type hashingReader struct {
	r       *bufio.Reader
	h       hash.Hash
	pending []byte
	n       int64
	err     error // the reader's last error
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.err = err
	hr.pending = append(hr.pending, p[:n]...)
	hr.flush(false)
	hr.n += int64(n)
	return n, err
}

func (hr *hashingReader) ReadByte() (byte, error) {
	b, err := hr.r.ReadByte()
	hr.err = err
	if err != nil {
		return 0, err
	}
	hr.pending = append(hr.pending, b)
	hr.flush(false)
	hr.n++
	return b, nil
}

func (hr *hashingReader) flush(all bool) {
	if all || len(hr.pending) >= 4<<10 {
		hr.h.Write(hr.pending)
		hr.pending = hr.pending[:0]
	}
}

// sum is the hash of everything read so far; the bytes read after it are
// not hashed (the checksum itself).
func (hr *hashingReader) sum() []byte {
	hr.flush(true)
	sum := hr.h.Sum(nil)
	hr.h = nopHash{hr.h}
	return sum
}

// nopHash discards what is written: after the checksum nothing is hashed.
type nopHash struct{ hash.Hash }

func (nopHash) Write(p []byte) (int, error) { return len(p), nil }

// Info is what Verify learns of a backup.
type Info struct {
	Header
	// Size is the file's size in bytes; SHA256 the hash of the whole file.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// StateHash is the hash of the contents that GET /v1/status?hash=true
	// reports for a store holding them: a restored cluster at the backup's
	// revision shows the same one.
	StateHash string `json:"state_hash"`
}

// Verify reads a whole backup, checking every record and the checksum, and
// calls fn, when set, with each key-value in order.
func Verify(r io.Reader, fn func(kvstore.KeyValue) error) (Info, error) {
	whole := sha256.New()
	rd, err := NewReader(io.TeeReader(r, whole))
	if err != nil {
		return Info{}, err
	}
	var sh kvstore.Hasher
	for {
		kv, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Info{}, err
		}
		sh.Add(kv)
		if fn != nil {
			if err := fn(kv); err != nil {
				return Info{}, err
			}
		}
	}
	for _, l := range rd.Header().KVLeases() {
		sh.AddLease(l)
	}
	return Info{Header: rd.Header(), Size: rd.Offset(), SHA256: hex.EncodeToString(whole.Sum(nil)), StateHash: sh.Sum()}, nil
}
