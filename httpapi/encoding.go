package httpapi

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"unicode/utf8"

	"github.com/raftkv/raftkv/kvstore"
)

// keyEncoding is how a JSON response writes keys and values, chosen by the
// request's encoding parameter. Every JSON answer that carries keys or
// values (listings, watch events, and transaction results as they come)
// encodes them through it, so that one parameter means the same everywhere.
//
// A JSON string holds Unicode text, not bytes, and encoding/json would
// replace each invalid UTF-8 byte with U+FFFD: a value read back would
// differ from the one written, silently. So base64 (the default) carries
// any key or value, and text carries a key or value as it is only when it
// is valid UTF-8 and refuses it otherwise (ErrNotUTF8). It neither escapes
// nor falls back to base64 per item: etcd and Consul answer base64 only,
// and a script that reads .value with jq would take an escaped or base64
// string for the value itself. Valid UTF-8 round-trips exactly, control
// characters and NUL included (JSON escapes them).
type keyEncoding uint8

const (
	encodeBase64 keyEncoding = iota // standard alphabet, padded
	encodeText                      // the bytes as a JSON string, if UTF-8
)

// encodingParam reads the encoding parameter: base64 (the default, also
// when absent) or text.
func encodingParam(q url.Values) (keyEncoding, error) {
	v, ok, err := param(q, "encoding")
	switch {
	case err != nil:
		return 0, err
	case !ok || v == "base64":
		return encodeBase64, nil
	case v == "text":
		return encodeText, nil
	}
	return 0, badRequest("invalid_encoding", fmt.Sprintf("encoding %q: use base64 or text", v))
}

// key returns a key as a JSON string holds it.
func (e keyEncoding) key(key []byte) (string, error) {
	if e == encodeBase64 {
		return base64.StdEncoding.EncodeToString(key), nil
	}
	if !utf8.Valid(key) {
		return "", fmt.Errorf("%w: key %s; ask for encoding=base64 (the default)", ErrNotUTF8, quoteKey(key))
	}
	return string(key), nil
}

// value returns the value of key as a JSON string holds it. The pointer
// lets a response tell an empty value ("") from none (omitted).
func (e keyEncoding) value(key, value []byte) (*string, error) {
	var s string
	switch {
	case e == encodeBase64:
		s = base64.StdEncoding.EncodeToString(value)
	case !utf8.Valid(value):
		return nil, fmt.Errorf("%w: the value of key %s; ask for encoding=base64 (the default)", ErrNotUTF8, quoteKey(key))
	default:
		s = string(value)
	}
	return &s, nil
}

// listedKV is the JSON of one key with its item, as a listing shows it;
// key and value are in the request's encoding. Value is a pointer so that
// an empty value is "" and keys_only omits it.
type listedKV struct {
	Key            string  `json:"key"`
	Value          *string `json:"value,omitempty"`
	CreateRevision uint64  `json:"create_revision"`
	ModRevision    uint64  `json:"mod_revision"`
	Version        uint64  `json:"version"`
	Lease          uint64  `json:"lease,omitempty"`
}

// listed returns kv as a listing shows it, without its value when
// keysOnly: a value that is not sent cannot make encoding=text fail.
func (e keyEncoding) listed(kv kvstore.KeyValue, keysOnly bool) (listedKV, error) {
	k, err := e.key(kv.Key)
	if err != nil {
		return listedKV{}, err
	}
	out := listedKV{Key: k, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version, Lease: kv.Lease}
	if !keysOnly {
		if out.Value, err = e.value(kv.Key, kv.Value); err != nil {
			return listedKV{}, err
		}
	}
	return out, nil
}

// quoteKey quotes a key for an error message, Go-escaped so that the
// message stays valid UTF-8, and cut short: a key can be as long as a
// request line.
func quoteKey(key []byte) string {
	const max = 64
	if len(key) <= max {
		return strconv.Quote(string(key))
	}
	return strconv.Quote(string(key[:max])) + "..."
}
