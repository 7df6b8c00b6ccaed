package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/raftkv/raftkv/httpapi"
	"github.com/raftkv/raftkv/internal/testcluster"
	"github.com/raftkv/raftkv/wire"
)

func (n *node) txn(t *testing.T, req any) (response, wire.TxnResponse) {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	r := n.do(t, http.MethodPost, "/v1/txn", body)
	var out wire.TxnResponse
	if r.status == http.StatusOK {
		decodeStrict(t, r, &out)
	}
	return r, out
}

func u64(v uint64) *uint64 { return &v }

// TestTxnThroughFollower moves two keys atomically through a follower:
// a compare on one key's mod revision chooses the branch, the success branch
// writes both at one revision that every member shows, and a stale compare
// runs the failure branch, which reads the current values instead.
func TestTxnThroughFollower(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	leader := c.WaitLeader()
	f := clusterNode(t, c, leader%3+1)
	from := f.putV1(t, "acct/alice", "100", nil)
	f.putV1(t, "acct/bob", "0", nil)

	move := wire.TxnRequest{
		Compare: []wire.TxnCompare{{Key: []byte("acct/alice"), Target: wire.TargetModRevision, Op: "=", ModRevision: u64(from.Revision)}},
		Success: []wire.TxnOp{
			{Put: &wire.TxnPut{Key: []byte("acct/alice"), Value: []byte("70")}},
			{Put: &wire.TxnPut{Key: []byte("acct/bob"), Value: []byte("30")}},
		},
		Failure: []wire.TxnOp{{List: &wire.TxnRange{Prefix: []byte("acct/")}}},
	}
	r, res := f.txn(t, move)
	expect(t, "the first move", r, http.StatusOK, "")
	if !res.Succeeded || len(res.Results) != 2 || res.Results[0].Put == nil || res.Results[1].Put.KV.ModRevision != res.Revision ||
		r.header.Get("X-Raftkv-Revision") != strconv.FormatUint(res.Revision, 10) {
		t.Fatalf("the first move: %+v (header revision %s)", res, r.header.Get("X-Raftkv-Revision"))
	}
	c.WaitApplied(res.Revision)
	for id := uint64(1); id <= 3; id++ {
		for key, want := range map[string]string{"acct/alice": "70", "acct/bob": "30"} {
			it, _, ok := c.Server(id).KV().Store().Get([]byte(key))
			if !ok || string(it.Value) != want || it.ModRevision != res.Revision {
				t.Fatalf("member %d: %s = %q at %d, want %q at %d", id, key, it.Value, it.ModRevision, want, res.Revision)
			}
		}
	}
	// The same move again: alice has moved on, the failure branch lists.
	r, res = f.txn(t, move)
	expect(t, "the stale move", r, http.StatusOK, "")
	if res.Succeeded || len(res.Results) != 1 || res.Results[0].List == nil || len(res.Results[0].List.KVs) != 2 ||
		string(res.Results[0].List.KVs[0].Value) != "70" {
		t.Fatalf("the stale move: %+v", res)
	}
}

// TestTxnConcurrentIncrements has clients on every member increment one
// counter with compare-and-swap transactions at once: the transactions
// serialize, so the counter ends at exactly the number that succeeded.
func TestTxnConcurrentIncrements(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Size: 3})
	c.WaitLeader()
	nodes := []*node{clusterNode(t, c, 1), clusterNode(t, c, 2), clusterNode(t, c, 3)}
	nodes[0].putV1(t, "counter", "0", nil)
	var mu sync.Mutex
	succeeded := 0
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := nodes[w%3]
			for range 10 {
				get, _ := n.txn(t, wire.TxnRequest{Success: []wire.TxnOp{{Get: &wire.TxnKey{Key: []byte("counter")}}}})
				var read wire.TxnResponse
				if get.status != http.StatusOK || json.Unmarshal(get.body, &read) != nil {
					t.Errorf("read the counter: %d %s", get.status, get.body)
					return
				}
				kv := read.Results[0].Get.KV
				v, _ := strconv.Atoi(string(kv.Value))
				r, res := n.txn(t, wire.TxnRequest{
					Compare: []wire.TxnCompare{{Key: []byte("counter"), Target: wire.TargetModRevision, Op: "=", ModRevision: u64(kv.ModRevision)}},
					Success: []wire.TxnOp{{Put: &wire.TxnPut{Key: []byte("counter"), Value: []byte(strconv.Itoa(v + 1))}}},
				})
				if r.status != http.StatusOK {
					t.Errorf("increment: %d %s", r.status, r.body)
					return
				}
				if res.Succeeded {
					mu.Lock()
					succeeded++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	// Read through the log, so that member 1 has applied every increment.
	_, final := nodes[0].txn(t, wire.TxnRequest{Success: []wire.TxnOp{{Get: &wire.TxnKey{Key: []byte("counter")}}}})
	if got := string(final.Results[0].Get.KV.Value); got != strconv.Itoa(succeeded) || succeeded == 0 {
		t.Fatalf("counter %s after %d successful increments", got, succeeded)
	}
}

// TestTxnRefusals sends malformed transactions: each is refused with its
// status and code, and the store is unchanged.
func TestTxnRefusals(t *testing.T) {
	n := startSingleNodeWith(t, nodeOptions{limits: func(c *httpapi.Config) { c.MaxRequestBytes = 1 << 20 }})
	n.putV1(t, "k", "v", nil)
	before := n.srv.KV().Store().Revision()
	many := `{"success": [` + repeatJoin(`{"get": {"key": "aw=="}}`, 129) + `]}`
	long := fmt.Sprintf(`{"success": [{"put": {"key": "%s", "value": ""}}]}`, b64(string(make([]byte, 100))))
	cases := []struct {
		name, body string
		status     int
		code       string
	}{
		{"not JSON", `{`, 400, "invalid_txn"},
		{"empty body", ``, 400, "invalid_txn"},
		{"unknown field", `{"then": []}`, 400, "invalid_txn"},
		{"a field twice", `{"success": [], "success": []}`, 400, "invalid_txn"},
		{"an op with two kinds", `{"success": [{"put": {"key": "aw==", "value": ""}, "get": {"key": "aw=="}}]}`, 400, "invalid_txn"},
		{"an empty op", `{"success": [{}]}`, 400, "invalid_txn"},
		{"bad target", `{"compare": [{"key": "aw==", "target": "lease", "op": "="}]}`, 400, "invalid_txn"},
		{"bad op", `{"compare": [{"key": "aw==", "target": "version", "op": "==", "version": 1}]}`, 400, "invalid_txn"},
		{"operand in another field", `{"compare": [{"key": "aw==", "target": "version", "op": "=", "mod_revision": 1}]}`, 400, "invalid_txn"},
		{"missing operand", `{"compare": [{"key": "aw==", "target": "version", "op": "="}]}`, 400, "invalid_txn"},
		{"key written twice", `{"success": [{"put": {"key": "aw==", "value": ""}}, {"delete": {"key": "aw=="}}]}`, 400, "duplicate_key"},
		{"put under a deleted prefix", `{"failure": [{"delete_prefix": {"prefix": ""}}, {"put": {"key": "aw==", "value": ""}}]}`, 400, "duplicate_key"},
		{"too many ops", many, 400, "too_many_operations"},
		{"empty key", `{"success": [{"get": {"key": ""}}]}`, 400, "invalid_txn"},
		{"list limit too large", `{"success": [{"list": {"prefix": "", "limit": 10001}}]}`, 400, "invalid_txn"},
		{"key too long", long, 413, "key_too_large"},
		{"a query parameter", `{}`, 400, "invalid_parameter"},
	}
	for _, tc := range cases {
		path := "/v1/txn"
		if tc.name == "a query parameter" {
			path += "?consistency=serializable"
		}
		r := n.do(t, http.MethodPost, path, []byte(tc.body))
		expect(t, tc.name, r, tc.status, tc.code)
		if rev := n.srv.KV().Store().Revision(); rev != before {
			t.Fatalf("%s: the store moved to revision %d", tc.name, rev)
		}
	}
	if r := n.do(t, http.MethodGet, "/v1/txn", nil); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
		t.Fatalf("GET /v1/txn: %d, Allow %q", r.status, r.header.Get("Allow"))
	}
}

func repeatJoin(s string, n int) string {
	out := s
	for range n - 1 {
		out += "," + s
	}
	return out
}

// TestTxnNeedsEveryKey: with access control on, a transaction needs the
// right to every key either branch reads or writes, whichever runs.
func TestTxnNeedsEveryKey(t *testing.T) {
	store := authStoreWith(t, map[string]any{
		"app": map[string]any{"read": []string{"app/"}, "write": []string{"app/"}},
	})
	n := startSingleNodeWith(t, nodeOptions{limits: func(c *httpapi.Config) { c.Auth = store }})
	txn := func(body string) response {
		return n.doHeader(t, http.MethodPost, "/v1/txn", as("app"), []byte(body))
	}
	ok := `{"compare": [{"key": "` + b64("app/k") + `", "target": "version", "op": "=", "version": 0}],
		"success": [{"put": {"key": "` + b64("app/k") + `", "value": ""}}], "failure": [{"list": {"prefix": "` + b64("app/") + `"}}]}`
	expect(t, "a transaction within app/", txn(ok), http.StatusOK, "")
	for name, body := range map[string]string{
		"a compare outside":       `{"compare": [{"key": "` + b64("other") + `", "target": "version", "op": "=", "version": 0}]}`,
		"a put in the failure":    `{"failure": [{"put": {"key": "` + b64("other") + `", "value": ""}}]}`,
		"a list of every key":     `{"success": [{"list": {"prefix": ""}}]}`,
		"a delete_prefix outside": `{"success": [{"delete_prefix": {"prefix": "` + b64("ap") + `"}}]}`,
		"a get outside":           `{"failure": [{"get": {"key": "` + b64("other") + `"}}]}`,
	} {
		expect(t, name, txn(body), http.StatusForbidden, "permission_denied")
	}
	expect(t, "no credentials", n.do(t, http.MethodPost, "/v1/txn", []byte(ok)), http.StatusUnauthorized, "auth_required")
}

// TestTxnEncodingText: with ?encoding=text the results carry keys and
// values as JSON strings; a put that text cannot carry is refused before
// anything is applied, and a read of bytes text cannot carry, known only
// once applied, answers the whole result in base64, saying so.
func TestTxnEncodingText(t *testing.T) {
	n := startSingleNode(t)
	n.putV1(t, "bin", "\xff\xfe", nil)
	before := n.srv.KV().Store().Revision()
	body := `{"success": [{"put": {"key": "` + b64("greeting") + `", "value": "` + b64("héllo") + `"}}, {"get": {"key": "` + b64("greeting") + `"}}]}`
	r := n.do(t, http.MethodPost, "/v1/txn?encoding=text", []byte(body))
	expect(t, "a text transaction", r, http.StatusOK, "")
	var text struct {
		Succeeded bool
		Encoding  string
		Results   []struct {
			Put *struct{ KV struct{ Key, Value string } }
			Get *struct{ KV struct{ Key, Value string } }
		}
	}
	if err := json.Unmarshal(r.body, &text); err != nil || !text.Succeeded || text.Encoding != "text" ||
		text.Results[0].Put.KV.Value != "héllo" || text.Results[1].Get.KV.Key != "greeting" {
		t.Fatalf("a text transaction: %s (%v)", r.body, err)
	}
	put := `{"success": [{"put": {"key": "` + b64("k2") + `", "value": "` + b64("\xff") + `"}}]}`
	expect(t, "a binary put in text", n.do(t, http.MethodPost, "/v1/txn?encoding=text", []byte(put)), http.StatusBadRequest, "not_utf8")
	if rev := n.srv.KV().Store().Revision(); rev != before+1 {
		t.Fatalf("revision %d after a refused put, want %d", rev, before+1)
	}
	get := `{"success": [{"get": {"key": "` + b64("bin") + `"}}]}`
	r = n.do(t, http.MethodPost, "/v1/txn?encoding=text", []byte(get))
	var fallback struct {
		Encoding string
		wire.TxnResponse
	}
	if err := json.Unmarshal(r.body, &fallback); err != nil || r.status != http.StatusOK || fallback.Encoding != "base64" ||
		string(fallback.Results[0].Get.KV.Value) != "\xff\xfe" {
		t.Fatalf("a binary get in text: %d %s (%v)", r.status, r.body, err)
	}
	expect(t, "a bad encoding", n.do(t, http.MethodPost, "/v1/txn?encoding=hex", []byte(`{}`)), http.StatusBadRequest, "invalid_encoding")
}
