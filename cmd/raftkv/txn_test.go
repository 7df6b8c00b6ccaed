package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/client"
)

func u64(n uint64) *uint64 { return &n }

// asJSON shows a parsed value in failure messages (pointers as values).
func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestParseCompare reads every compare form of etcdctl's txn, its target
// aliases and operators, Go quoting, and refuses the rest saying why.
func TestParseCompare(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    client.TxnCompare
		wantErr string
	}{
		{line: `value("acct/bob") != "x"`, want: client.TxnCompare{Key: []byte("acct/bob"), Target: "value", Op: "!=", Value: []byte("x")}},
		{line: `val("k") = "v"`, want: client.TxnCompare{Key: []byte("k"), Target: "value", Op: "=", Value: []byte("v")}},
		{line: `version("k") = "0"`, want: client.TxnCompare{Key: []byte("k"), Target: "version", Op: "=", Version: u64(0)}},
		{line: `ver("k") > "3"`, want: client.TxnCompare{Key: []byte("k"), Target: "version", Op: ">", Version: u64(3)}},
		{line: `create("k") < "12"`, want: client.TxnCompare{Key: []byte("k"), Target: "create_revision", Op: "<", CreateRevision: u64(12)}},
		{line: `c("k") = "12"`, want: client.TxnCompare{Key: []byte("k"), Target: "create_revision", Op: "=", CreateRevision: u64(12)}},
		{line: `mod("acct/alice") = "42"`, want: client.TxnCompare{Key: []byte("acct/alice"), Target: "mod_revision", Op: "=", ModRevision: u64(42)}},
		{line: `m("k") != "42"`, want: client.TxnCompare{Key: []byte("k"), Target: "mod_revision", Op: "!=", ModRevision: u64(42)}},
		// Go quoting, as etcdctl's %q: escapes, raw strings, bytes.
		{line: `value("a \"b\"") = "line\n\xff"`, want: client.TxnCompare{Key: []byte(`a "b"`), Target: "value", Op: "=", Value: []byte("line\n\xff")}},
		{line: "value(`a b`) = `c\\d`", want: client.TxnCompare{Key: []byte("a b"), Target: "value", Op: "=", Value: []byte(`c\d`)}},
		// Spaces around the parts are optional.
		{line: `mod ( "k" )>"1"`, want: client.TxnCompare{Key: []byte("k"), Target: "mod_revision", Op: ">", ModRevision: u64(1)}},

		{line: `value("k") = ""`, want: client.TxnCompare{Key: []byte("k"), Target: "value", Op: "=", Value: []byte{}}},
		{line: `mod "k" = "1"`, wantErr: "malformed compare"},
		{line: `lease("k") = "7"`, want: client.TxnCompare{Key: []byte("k"), Target: "lease", Op: "=", Lease: u64(7)}},
		{line: `size("k") = "1"`, wantErr: `unknown compare target "size"`},
		{line: `mod(k) = "1"`, wantErr: "mod(KEY): want a quoted string"},
		{line: `mod("k) = "1"`, wantErr: "want ) after"},
		{line: `mod("k" = "1"`, wantErr: "want ) after"},
		{line: `mod("") = "1"`, wantErr: "empty key"},
		{line: `mod("k") "1"`, wantErr: "want an operator"},
		{line: `mod("k") == "1"`, wantErr: `unknown operator "=="`},
		{line: `mod("k") >= "1"`, wantErr: `unknown operator ">="`},
		{line: `mod("k") = 1`, wantErr: "operand: want a quoted string"},
		{line: `mod("k") = "1`, wantErr: "operand: unterminated"},
		{line: `mod("k") = "1" x`, wantErr: `unexpected "x" after the operand`},
		{line: `mod("k") = "-1"`, wantErr: `mod compares a number, not "-1"`},
		{line: `version("k") = "abc"`, wantErr: `version compares a number, not "abc"`},
	} {
		got, err := parseCompare(tc.line)
		checkParsed(t, tc.line, got, err, tc.want, tc.wantErr)
	}
}

// TestParseTxnOp reads every request form, etcdctl's quoting (Go strings
// in double quotes, single quotes as they are) and flags anywhere after
// the command, and refuses what raftkv's transactions cannot do.
func TestParseTxnOp(t *testing.T) {
	put := func(k, v string) client.TxnOp {
		return client.TxnOp{Put: &client.TxnPut{Key: []byte(k), Value: []byte(v)}}
	}
	for _, tc := range []struct {
		line    string
		want    client.TxnOp
		wantErr string
	}{
		{line: "put acct/alice 70", want: put("acct/alice", "70")},
		{line: `put "my key" "two words"`, want: put("my key", "two words")},
		{line: `put 'my key' 'it\n is'`, want: put("my key", `it\n is`)},
		{line: `put k "tab\there \"quoted\" \xff"`, want: put("k", "tab\there \"quoted\" \xff")},
		{line: `put k ""`, want: put("k", "")},
		{line: "put\tk  \t v", want: put("k", "v")},
		{line: `put k a"b`, want: put("k", `a"b`)},
		{line: "put k -- --", want: put("k", "--")},
		{line: "put -- k --v", want: put("k", "--v")},
		{line: `put k "--prefix"`, want: put("k", "--prefix")},
		{line: "put k -1", want: put("k", "-1")},
		{line: "put k v --lease 7", want: client.TxnOp{Put: &client.TxnPut{Key: []byte("k"), Value: []byte("v"), Lease: 7}}},
		{line: "put --lease=7 k v", want: client.TxnOp{Put: &client.TxnPut{Key: []byte("k"), Value: []byte("v"), Lease: 7}}},
		{line: "del acct/alice", want: client.TxnOp{Delete: &client.TxnKey{Key: []byte("acct/alice")}}},
		{line: "del --prefix acct/", want: client.TxnOp{DeletePrefix: &client.TxnRange{Prefix: []byte("acct/")}}},
		{line: "del acct/ --prefix", want: client.TxnOp{DeletePrefix: &client.TxnRange{Prefix: []byte("acct/")}}},
		{line: `del --prefix ""`, want: client.TxnOp{DeletePrefix: &client.TxnRange{Prefix: []byte{}}}},
		{line: "get acct/alice", want: client.TxnOp{Get: &client.TxnKey{Key: []byte("acct/alice")}}},
		{line: "get --prefix acct/", want: client.TxnOp{List: &client.TxnRange{Prefix: []byte("acct/")}}},
		{line: "get --prefix acct/ --limit 5", want: client.TxnOp{List: &client.TxnRange{Prefix: []byte("acct/"), Limit: 5}}},
		{line: "get --limit=10000 acct/ --prefix", want: client.TxnOp{List: &client.TxnRange{Prefix: []byte("acct/"), Limit: 10000}}},

		{line: "put k", wantErr: "put takes KEY VALUE; got 1 argument(s)"},
		{line: "put k --", wantErr: "put takes KEY VALUE; got 1 argument(s)"},
		{line: "put k v w", wantErr: "put takes KEY VALUE; got 3 argument(s)"},
		{line: `put "" v`, wantErr: "empty key"},
		{line: "put k v --prev-kv", wantErr: "put: unknown flag --prev-kv (put takes --lease ID)"},
		{line: "put k v --lease", wantErr: "--lease needs a lease id"},
		{line: "put k v --lease x", wantErr: `--lease "x": want a lease id`},
		{line: "put k v --prefix", wantErr: "put: unknown flag --prefix"},
		{line: `put "k v`, wantErr: "unterminated or malformed double-quoted string"},
		{line: `put "k\q" v`, wantErr: "malformed double-quoted string"},
		{line: "put 'k v", wantErr: "unterminated single-quoted string"},
		{line: `put "k"v x`, wantErr: "a closing quote must end the word"},
		{line: "del", wantErr: "del takes KEY; got 0 argument(s)"},
		{line: "del a z", wantErr: "del takes KEY; got 2 argument(s)"},
		{line: `del ""`, wantErr: `empty key (--prefix "" means every key)`},
		{line: "del --from-key a", wantErr: "del: unknown flag --from-key (del takes --prefix)"},
		{line: "get --prefix", wantErr: "get takes PREFIX; got 0 argument(s)"},
		{line: "get k --limit 5", wantErr: "--limit needs --prefix"},
		{line: "get --prefix k --limit", wantErr: "--limit needs a number"},
		{line: "get --prefix k --limit 0", wantErr: `--limit "0": want 1 to 10000`},
		{line: "get --prefix k --limit 10001", wantErr: `--limit "10001": want 1 to 10000`},
		{line: "get --prefix k --limit x", wantErr: `--limit "x": want 1 to 10000`},
		{line: "get k --rev 3", wantErr: "get: unknown flag --rev (get takes --prefix and --limit N)"},
		{line: "delete k", wantErr: `unknown request "delete": want get, put or del`},
	} {
		got, err := parseTxnOp(tc.line)
		checkParsed(t, tc.line, got, err, tc.want, tc.wantErr)
	}
}

// TestParseTxn reads whole inputs: the sections, input that ends early,
// errors that name their line, and text after the failure requests.
func TestParseTxn(t *testing.T) {
	get := func(k string) client.TxnOp { return client.TxnOp{Get: &client.TxnKey{Key: []byte(k)}} }
	for _, tc := range []struct {
		name, input string
		want        client.TxnRequest
		wantErr     string
	}{
		{
			name:  "three sections",
			input: "mod(\"a\") = \"4\"\nvalue(\"b\") != \"x\"\n\nget a\nget b\n\nget c\n\n",
			want: client.TxnRequest{
				Compare: []client.TxnCompare{
					{Key: []byte("a"), Target: "mod_revision", Op: "=", ModRevision: u64(4)},
					{Key: []byte("b"), Target: "value", Op: "!=", Value: []byte("x")},
				},
				Success: []client.TxnOp{get("a"), get("b")},
				Failure: []client.TxnOp{get("c")},
			},
		},
		{
			name:  "no trailing newline, CRLF, blank lines of spaces, indentation",
			input: "  mod(\"a\") = \"4\"\r\n \t\r\n  get a\r\n\r\nget c",
			want: client.TxnRequest{
				Compare: []client.TxnCompare{{Key: []byte("a"), Target: "mod_revision", Op: "=", ModRevision: u64(4)}},
				Success: []client.TxnOp{get("a")},
				Failure: []client.TxnOp{get("c")},
			},
		},
		{name: "no compares", input: "\nget a\n", want: client.TxnRequest{Success: []client.TxnOp{get("a")}}},
		{name: "only failure requests", input: "\n\nget a\n", want: client.TxnRequest{Failure: []client.TxnOp{get("a")}}},
		{name: "compares only, ended by EOF", input: `mod("a") = "4"`, want: client.TxnRequest{
			Compare: []client.TxnCompare{{Key: []byte("a"), Target: "mod_revision", Op: "=", ModRevision: u64(4)}}}},
		{name: "empty lines after the failure requests", input: "\n\nget a\n\n\n  \n", want: client.TxnRequest{Failure: []client.TxnOp{get("a")}}},

		{name: "bad compare", input: "mod(\"a\") = \"4\"\nmod(\"b\") = \"x\"\n", wantErr: `line 2 (mod("b") = "x"): mod compares a number, not "x"`},
		{name: "request among compares", input: "get a\n", wantErr: "line 1 (get a): malformed compare"},
		{name: "bad success request", input: "\nget a\nput b\n", wantErr: "line 3 (put b): put takes KEY VALUE; got 1 argument(s)"},
		{name: "bad failure request", input: "\nget a\n\nget a\nget --prefix a --limit 0\n", wantErr: `line 5 (get --prefix a --limit 0): --limit "0": want 1 to 10000`},
		{name: "text after the failure requests", input: "\nget a\n\nget b\n\nget c\n", wantErr: "line 6 (get c): text after the failure requests"},
		{name: "empty input", input: "", wantErr: "no transaction on standard input"},
		{name: "empty lines only", input: "\n\n\n", wantErr: "no transaction on standard input"},
	} {
		got, err := parseTxn(strings.NewReader(tc.input), nil)
		var usage *usageError
		switch {
		case tc.wantErr != "":
			if err == nil || err.Error() != tc.wantErr && !strings.HasPrefix(err.Error(), tc.wantErr) || !errors.As(err, &usage) {
				t.Errorf("%s: got %s, %v; want a usage error starting %q", tc.name, asJSON(got), err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !reflect.DeepEqual(got, tc.want):
			t.Errorf("%s: got %s, want %s", tc.name, asJSON(got), asJSON(tc.want))
		}
	}
}

// TestParseTxnInteractive checks that interactive input is prompted for
// section by section, as etcdctl prompts, and ends at the failure
// requests' empty line without waiting for more.
func TestParseTxnInteractive(t *testing.T) {
	var prompts []string
	in := strings.NewReader("mod(\"a\") = \"4\"\n\nget a\n\nget b\n\nnot read\n")
	req, err := parseTxn(in, func(s string) { prompts = append(prompts, s) })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"compares:", "success requests (get, put, del):", "failure requests (get, put, del):"}
	if !reflect.DeepEqual(prompts, want) || len(req.Compare) != 1 || len(req.Success) != 1 || len(req.Failure) != 1 {
		t.Fatalf("prompts %q, request %s; want %q and one compare, success and failure request", prompts, asJSON(req), want)
	}
}

// TestTxnCommand runs raftkv txn against a server that answers as POST
// /v1/txn does: the request sent is the input's, text output is etcdctl's
// and -o json prints the API's answer as it came.
func TestTxnCommand(t *testing.T) {
	const answer = `{"succeeded":false,"revision":9,"results":[` +
		`{"put":{"kv":{"key":"YQ==","value":"MQ==","create_revision":3,"mod_revision":9,"version":2},"created":false}},` +
		`{"delete":{"deleted":1}},{"delete_prefix":{"deleted":0}},` +
		`{"get":{"found":true,"kv":{"key":"YQ==","value":"MQ==","create_revision":3,"mod_revision":9,"version":2}}},` +
		`{"get":{"found":false}},` +
		`{"list":{"kvs":[{"key":"cC8x","value":"eA==","create_revision":4,"mod_revision":4,"version":1},` +
		`{"key":"cC8y","value":"","create_revision":5,"mod_revision":5,"version":1}],"more":false}}]}`
	var sent client.TxnRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/txn" {
			http.NotFound(w, r)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&sent); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	input := "mod(\"a\") = \"8\"\n\nput a 2\n\nput a 1\ndel a\ndel --prefix q/\nget a\nget nope\nget --prefix p/\n"
	run := func(args ...string) string {
		t.Helper()
		root := newRootCommand()
		var out bytes.Buffer
		root.SetArgs(append([]string{"txn", "--endpoints", srv.URL}, args...))
		root.SetIn(strings.NewReader(input))
		root.SetOut(&out)
		root.SetErr(io.Discard)
		if err := root.ExecuteContext(context.Background()); err != nil {
			t.Fatalf("raftkv txn %s: %v", strings.Join(args, " "), err)
		}
		return out.String()
	}

	text := run()
	if want := "FAILURE\n\n9\n\n1\n\n0\n\n1\n\n\np/1\nx\np/2\n\n"; text != want {
		t.Errorf("text output %q, want %q", text, want)
	}
	if len(sent.Compare) != 1 || len(sent.Success) != 1 || len(sent.Failure) != 6 || sent.Failure[5].List == nil {
		t.Errorf("sent %s, want the input's compare, one success and six failure requests", asJSON(sent))
	}
	if got := run("-o", "json"); got != answer+"\n" {
		t.Errorf("-o json printed %q, want the API's answer %q", got, answer+"\n")
	}
}

// checkParsed checks what a parser made of line: want, or an error that
// contains wantErr when that is set.
func checkParsed[T any](t *testing.T, line string, got T, err error, want T, wantErr string) {
	t.Helper()
	switch {
	case wantErr != "":
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: got %s, %v; want an error containing %q", line, asJSON(got), err, wantErr)
		}
	case err != nil:
		t.Errorf("%s: %v", line, err)
	case !reflect.DeepEqual(got, want):
		t.Errorf("%s: got %s, want %s", line, asJSON(got), asJSON(want))
	}
}
