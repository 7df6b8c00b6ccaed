package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/kvstore"
)

// Unit-level fuzz targets for the request parsers the handlers share: the
// conditional headers, query parameters, member ids and member JSON bodies.
// Each checks the parser against the rule docs/API.md states, not only that
// it does not panic.

// badRequestCode checks that err is a 400 with code.
func badRequestCode(t *testing.T, err error, code string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Code != code {
		t.Fatalf("error %#v, want a 400 %s", err, code)
	}
}

// isRevision reports whether v is a positive decimal integer that fits in
// 64 bits, digits only: what docs/API.md calls a revision.
func isRevision(v string) (uint64, bool) {
	if v == "" || strings.Trim(v, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil && n > 0
}

func FuzzCondition(f *testing.F) {
	for _, s := range []struct {
		method, match, none string
		headers             uint8 // 1: If-Match, 2: If-None-Match, 4: a second If-Match
	}{
		{"PUT", `"42"`, "", 1},
		{"PUT", "42", "", 1},
		{"PUT", " * ", "", 1},
		{"PUT", "", "*", 2},
		{"DELETE", "", "*", 2},
		{"PUT", `W/"1"`, "", 1},
		{"PUT", `"1", "2"`, "", 1},
		{"PUT", `"0"`, "", 1},
		{"PUT", `"18446744073709551616"`, "", 1},
		{"PUT", `"1"`, "*", 3},
		{"PUT", `"1"`, `"2"`, 5},
		{"PUT", "", `"5"`, 2},
		{"PUT", `""`, "", 1},
		{"PUT", `"`, "", 1},
	} {
		f.Add(s.method, s.match, s.none, s.headers)
	}
	f.Fuzz(func(t *testing.T, method, match, none string, headers uint8) {
		h := http.Header{}
		if headers&1 != 0 {
			h["If-Match"] = []string{match}
		}
		if headers&4 != 0 {
			h["If-Match"] = append(h["If-Match"], none)
		}
		if headers&2 != 0 {
			h["If-None-Match"] = []string{none}
		}
		c, err := condition(h, method)
		_, hasMatch := h["If-Match"]
		_, hasNone := h["If-None-Match"]
		switch {
		case !hasMatch && !hasNone:
			if err != nil || c != (kvstore.Condition{}) {
				t.Fatalf("no header: %+v, %v", c, err)
			}
		case hasMatch && hasNone:
			badRequestCode(t, err, "invalid_precondition")
		case hasNone:
			if method != http.MethodDelete && strings.TrimSpace(none) == "*" {
				if err != nil || c.Kind != kvstore.CondAbsent {
					t.Fatalf("If-None-Match: %q on %s: %+v, %v; want create-only", none, method, c, err)
				}
				return
			}
			badRequestCode(t, err, "invalid_precondition")
		case len(h["If-Match"]) > 1:
			badRequestCode(t, err, "invalid_precondition")
		default:
			match := h["If-Match"][0]
			v := strings.TrimSpace(match)
			if v == "*" {
				if err != nil || c.Kind != kvstore.CondExists {
					t.Fatalf("If-Match: %q: %+v, %v; want exists", match, c, err)
				}
				return
			}
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			rev, ok := isRevision(v)
			if !ok {
				badRequestCode(t, err, "invalid_precondition")
				return
			}
			if err != nil || c.Kind != kvstore.CondModRevision || c.ModRevision != rev {
				t.Fatalf("If-Match: %q: %+v, %v; want mod revision %d", match, c, err, rev)
			}
			// The ETag the API sends for a revision is a valid If-Match.
			again, err := condition(http.Header{"If-Match": {etag(rev)}}, method)
			if err != nil || again != c {
				t.Fatalf("If-Match: %s (the ETag of %d): %+v, %v", etag(rev), rev, again, err)
			}
		}
	})
}

func FuzzQueryParams(f *testing.F) {
	for _, q := range []string{
		"", "prefix=a", "prefix=a&prefix=b", "prefix=", "limit=10&cursor=YQ&keys_only=true",
		"limit=0", "limit=10001", "limit=+1", "limit=01", "keys_only=yes", "consistency=serializable",
		"consistency=eventual", "from=1", "from=0", "from=18446744073709551615", "a;b", "prefix=%zz",
		"prefix=%2F&limit=1", "cursor=***", "=", "&&", "prefix",
		"encoding=text", "encoding=base64", "encoding=", "encoding=Text", "encoding=text&encoding=text",
	} {
		f.Add(q, "")
	}
	f.Add("", "7")
	f.Add("", " 12 ")
	f.Add("", "18446744073709551615")
	f.Add("", "-1")
	f.Fuzz(func(t *testing.T, rawQuery, lastEventID string) {
		r := &http.Request{URL: &url.URL{Path: "/v1/kv/", RawQuery: rawQuery}, Header: http.Header{}}
		if lastEventID != "" {
			r.Header.Set("Last-Event-ID", lastEventID)
		}
		q, err := parseQuery(r)
		if want, werr := url.ParseQuery(rawQuery); werr != nil {
			badRequestCode(t, err, "invalid_parameter")
			return
		} else if err != nil || !reflect.DeepEqual(q, want) {
			t.Fatalf("parseQuery(%q) = %v, %v; want %v", rawQuery, q, err, want)
		}
		for name, vs := range q {
			v, ok, err := param(q, name)
			switch {
			case len(vs) > 1:
				badRequestCode(t, err, "invalid_parameter")
			case err != nil || !ok || v != vs[0]:
				t.Fatalf("param(%q) = %q, %v, %v; want %q", name, v, ok, err, vs[0])
			}
		}
		if b, err := boolParam(q, "keys_only"); err == nil {
			if vs := q["keys_only"]; !(len(vs) == 0 || len(vs) == 1 && (vs[0] == "true") == b && (vs[0] == "true" || vs[0] == "false")) {
				t.Fatalf("keys_only %q read as %v", vs, b)
			}
		} else {
			badRequestCode(t, err, "invalid_parameter")
		}
		if s, err := consistencyParam(q); err == nil {
			if vs := q["consistency"]; len(vs) > 1 || s != (len(vs) == 1 && vs[0] == "serializable") {
				t.Fatalf("consistency %q read as serializable=%v", vs, s)
			}
		} else if len(q["consistency"]) > 1 {
			badRequestCode(t, err, "invalid_parameter")
		} else {
			badRequestCode(t, err, "invalid_consistency")
		}
		if e, err := encodingParam(q); err == nil {
			vs, want := q["encoding"], encodeBase64
			if len(vs) == 1 && vs[0] == "text" {
				want = encodeText
			}
			if e != want || len(vs) > 1 || len(vs) == 1 && vs[0] != "text" && vs[0] != "base64" {
				t.Fatalf("encoding %q read as %v", vs, e)
			}
		} else if len(q["encoding"]) > 1 {
			badRequestCode(t, err, "invalid_parameter")
		} else {
			badRequestCode(t, err, "invalid_encoding")
		}
		from, err := watchStart(q, r.Header)
		vs := q["from"]
		switch {
		case len(vs) > 1:
			badRequestCode(t, err, "invalid_parameter")
		case len(vs) == 1:
			if rev, ok := isRevision(vs[0]); ok != (err == nil) || ok && from != rev {
				t.Fatalf("from=%q read as %d, %v", vs[0], from, err)
			}
		case strings.TrimSpace(lastEventID) == "":
			if err != nil || from != 0 {
				t.Fatalf("no from, no Last-Event-ID: %d, %v", from, err)
			}
		default:
			id, perr := strconv.ParseUint(strings.TrimSpace(lastEventID), 10, 64)
			valid := perr == nil && id < math.MaxUint64 && strings.Trim(strings.TrimSpace(lastEventID), "0123456789") == ""
			if valid != (err == nil) || valid && from != id+1 {
				t.Fatalf("Last-Event-ID %q read as from=%d, %v", lastEventID, from, err)
			}
			if err != nil {
				badRequestCode(t, err, "invalid_revision")
			}
		}
	})
}

func FuzzMemberID(f *testing.F) {
	for _, s := range []string{"1", "0", "0x10", "0X1f", "010", "-1", "+1", "18446744073709551615", "18446744073709551616", "1e3", " 1", "%31", "0b1", "0o7", "1_000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := strconv.ParseUint(s, 0, 64)
		valid := err == nil && want != 0
		id, err := parseMemberID(s)
		if valid != (err == nil) || valid && id != want {
			t.Fatalf("parseMemberID(%q) = %d, %v; want valid=%v %d", s, id, err, valid, want)
		}
		if err != nil {
			badRequestCode(t, err, "invalid_member_id")
		}
		unescaped, uerr := url.PathUnescape(s)
		want, err = strconv.ParseUint(unescaped, 0, 64)
		valid = uerr == nil && err == nil && want != 0
		id, err = parseV1MemberID(s)
		if valid != (err == nil) || valid && id != want {
			t.Fatalf("parseV1MemberID(%q) = %d, %v; want valid=%v %d", s, id, err, valid, want)
		}
		if err != nil {
			badRequestCode(t, err, "invalid_member_id")
		}
	})
}

func FuzzMemberBody(f *testing.F) {
	for _, b := range []string{
		`{"id": 4, "peer_urls": ["http://127.0.0.1:4"], "learner": true}`,
		`{"peer_urls": ["http://127.0.0.1:4"]}`,
		`{"peer_urls": []}`, `{}`, ``, ` `, `null`, `[]`, `{"id": "4"}`, `{"id": -1}`, `{"id": 1e3}`,
		`{"id": 18446744073709551616}`, `{"peer_urls": ["a"], "extra": 1}`, `{"peer_urls": ["a"]} {}`,
		`{"peer_urls": ["a"]} x`, `{"to": 2}`, `{"to": 2, "to": 3}`, `{"PEER_URLS": ["a"]}`, `{"peer_urls": ["\u0000"]}`,
		"{\"peer_urls\": [\"a\"]}\n", `{`,
	} {
		f.Add([]byte(b), uint8(0))
	}
	f.Add(append(bytes.Repeat([]byte(" "), maxMemberBodyBytes), '{', '}'), uint8(0))
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		var v any
		optional, code := false, "invalid_member"
		names := []string{"id", "peer_urls", "learner"}
		switch which % 3 {
		case 0:
			v = &addMemberRequest{}
		case 1:
			v, names = &updateMemberRequest{}, []string{"peer_urls"}
		default:
			v, optional, code, names = &transferRequest{}, true, "bad_body", []string{"to"}
		}
		r := httptest.NewRequest(http.MethodPost, "/v1/members", bytes.NewReader(body))
		err := decodeBody(httptest.NewRecorder(), r, v, optional, code)
		var e *Error
		switch {
		case len(body) > maxMemberBodyBytes:
			if !errors.As(err, &e) || e.Status != http.StatusRequestEntityTooLarge || e.Code != "request_too_large" {
				t.Fatalf("a %d-byte body: %v, want 413 request_too_large", len(body), err)
			}
		case len(bytes.TrimSpace(body)) == 0:
			if optional != (err == nil) {
				t.Fatalf("empty body (optional=%v): %v", optional, err)
			}
			if err != nil {
				badRequestCode(t, err, code)
			}
		case err != nil:
			badRequestCode(t, err, code)
		default:
			// Accepted: the body is one JSON value, and what was decoded
			// encodes and decodes back to itself.
			if !json.Valid(body) {
				t.Fatalf("accepted a body that is not one JSON value: %q", body)
			}
			if got := topLevelNames(body); !onlyOnce(got, names) {
				t.Fatalf("accepted %q: its fields %q are not %q, each at most once and spelt so", body, got, names)
			}
			enc, merr := json.Marshal(v)
			if merr != nil {
				t.Fatal(merr)
			}
			again := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			r := httptest.NewRequest(http.MethodPost, "/v1/members", bytes.NewReader(enc))
			if err := decodeBody(httptest.NewRecorder(), r, again, optional, code); err != nil || !reflect.DeepEqual(again, v) {
				t.Fatalf("%q decoded as %+v; its encoding %s decodes as %+v, %v", body, v, enc, again, err)
			}
		}
	})
}

// topLevelNames returns the field names of a JSON object, as sent and in
// order (nil for another value).
func topLevelNames(body []byte) []string {
	d := json.NewDecoder(bytes.NewReader(body))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	var names []string
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return names
		}
		names = append(names, tok.(string))
		var skip json.RawMessage
		if d.Decode(&skip) != nil {
			return names
		}
	}
	return names
}

// onlyOnce reports whether every name in got is one of allowed, exactly,
// and none comes twice.
func onlyOnce(got, allowed []string) bool {
	seen := map[string]bool{}
	for _, n := range got {
		if seen[n] || !slices.Contains(allowed, n) {
			return false
		}
		seen[n] = true
	}
	return true
}

// TestDecodeBodyNames checks the names an adversarial probe got through:
// the last of two "to" moved leadership, "Peer_URLs" was taken for
// peer_urls.
func TestDecodeBodyNames(t *testing.T) {
	for _, tc := range []struct {
		body string
		v    any
		says string
	}{
		{`{"to": 99, "to": 1}`, &transferRequest{}, `field "to" appears twice`},
		{`{"to": 99, "To": 1}`, &transferRequest{}, `fields "to" and "To" are the same field named twice`},
		{`{"\u0074o": 1, "to": 2}`, &transferRequest{}, `field "to" appears twice`},
		{"{\"to\": 1, \"t\u212a\": 2}", &transferRequest{}, "unknown field"}, // the Kelvin sign folds to k, not o
		{`{"To": 1}`, &transferRequest{}, `unknown field "To" (names are case-sensitive: use "to")`},
		{`{"Peer_URLs": ["http://127.0.0.1:1"]}`, &addMemberRequest{}, `unknown field "Peer_URLs" (names are case-sensitive: use "peer_urls")`},
		{`{"peer_urls": ["http://127.0.0.1:1"], "ID": 4}`, &addMemberRequest{}, `use "id"`},
		{`{"peer_urls": [], "peer_urls": ["http://127.0.0.1:1"]}`, &updateMemberRequest{}, "appears twice"},
		{`{"peer_urls": ["http://127.0.0.1:1"], "learner": false, "LEARNER": true}`, &addMemberRequest{}, "same field"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/v1/members", strings.NewReader(tc.body))
		err := decodeBody(httptest.NewRecorder(), r, tc.v, false, "bad_body")
		badRequestCode(t, err, "bad_body")
		if !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want it to say %q", tc.body, err, tc.says)
		}
	}
	var k struct {
		Kelvin int `json:"k"`
	}
	// "\u212a" (the Kelvin sign) is "k" to encoding/json: named twice.
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{\"k\": 1, \"\u212a\": 2}"))
	if err := decodeBody(httptest.NewRecorder(), r, &k, false, "bad_body"); err == nil || !strings.Contains(err.Error(), "same field") {
		t.Errorf("k and the Kelvin sign: %v, want the same field named twice", err)
	}
}
