package httpapi_test

import (
	"bytes"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/httpapi"
	"github.com/raftkv/raftkv/wire"
)

// mustBatch posts reqs as one batch, which must be served, and returns its
// response and answers.
func (n *node) mustBatch(t *testing.T, header http.Header, reqs ...wire.BatchRequest) (response, []wire.BatchAnswer) {
	t.Helper()
	r, a := n.doBatch(t, header, reqs...)
	if r.status != http.StatusOK {
		t.Fatalf("the batch was not served: %d %s", r.status, r.body)
	}
	return r, a
}

// doBatch posts reqs as one batch and returns the batch's response and,
// when it was served, its answers.
func (n *node) doBatch(t *testing.T, header http.Header, reqs ...wire.BatchRequest) (response, []wire.BatchAnswer) {
	t.Helper()
	h := http.Header{"Content-Type": {wire.BatchContentType}}
	for k, v := range header {
		h[k] = v
	}
	r := n.doHeader(t, http.MethodPost, "/v1/batch", h, wire.AppendBatchRequests(nil, reqs))
	if r.status != http.StatusOK {
		return r, nil
	}
	if ct := r.header.Get("Content-Type"); ct != wire.BatchContentType {
		t.Fatalf("a batch answered with Content-Type %q", ct)
	}
	answers, err := wire.DecodeBatchAnswers(r.body)
	if err != nil {
		t.Fatalf("decode the answers: %v", err)
	}
	if len(answers) != len(reqs) {
		t.Fatalf("%d answers to %d requests", len(answers), len(reqs))
	}
	return r, answers
}

func answerCode(t *testing.T, a wire.BatchAnswer) string {
	t.Helper()
	return errorCode(t, response{status: a.Status, header: a.Header, body: a.Body})
}

// TestBatch checks that each request in a batch is answered as it would be
// alone: its status, headers and body, a failed condition failing only its
// own request, in order.
func TestBatch(t *testing.T) {
	n := startSingleNode(t)
	expect(t, "put k", n.do(t, http.MethodPut, "/v1/kv/k", []byte("v1")), http.StatusOK, "")
	_, a := n.mustBatch(t, nil,
		wire.BatchRequest{Method: "GET", Target: "/v1/kv/k"},
		wire.BatchRequest{Method: "PUT", Target: "/v1/kv/a%2Fb", Body: []byte("slash")},
		wire.BatchRequest{Method: "PUT", Target: "/v1/kv/k", Header: http.Header{"If-None-Match": {"*"}}, Body: []byte("no")},
		wire.BatchRequest{Method: "GET", Target: "/v1/kv/missing?consistency=serializable"},
		wire.BatchRequest{Method: "HEAD", Target: "/v1/kv/k"},
		wire.BatchRequest{Method: "DELETE", Target: "/v1/kv/k", Header: http.Header{"If-Match": {`"999"`}}},
		wire.BatchRequest{Method: "GET", Target: "/v1/kv/k?consistency=sometimes"},
	)
	if a[0].Status != http.StatusOK || string(a[0].Body) != "v1" || a[0].Header.Get("ETag") == "" || a[0].Header.Get("X-Raftkv-Mod-Revision") == "" {
		t.Fatalf("get in a batch: %d %v %q", a[0].Status, a[0].Header, a[0].Body)
	}
	var put putResponse
	decodeStrict(t, response{status: a[1].Status, header: a[1].Header, body: a[1].Body}, &put)
	if a[1].Status != http.StatusOK || !put.Created {
		t.Fatalf("put in a batch: %d %s", a[1].Status, a[1].Body)
	}
	for i, w := range []struct {
		status int
		code   string
	}{{}, {}, {http.StatusPreconditionFailed, "precondition_failed"}, {http.StatusNotFound, "key_not_found"}, {}, {http.StatusPreconditionFailed, "precondition_failed"}, {http.StatusBadRequest, "invalid_consistency"}} {
		if w.status == 0 {
			continue
		}
		if a[i].Status != w.status || answerCode(t, a[i]) != w.code {
			t.Errorf("answer %d: %d %s, want %d %s", i, a[i].Status, a[i].Body, w.status, w.code)
		}
	}
	if a[4].Status != http.StatusOK || len(a[4].Body) != 0 || a[4].Header.Get("Content-Length") != "2" {
		t.Errorf("head in a batch: %d %v %q", a[4].Status, a[4].Header, a[4].Body)
	}
	if r := n.do(t, http.MethodGet, "/v1/kv/a%2Fb", nil); r.status != http.StatusOK || string(r.body) != "slash" {
		t.Fatalf("the batched put did not land: %d %q", r.status, r.body)
	}
	if r := n.do(t, http.MethodGet, "/v1/kv/k", nil); string(r.body) != "v1" {
		t.Fatalf("a refused write in a batch changed the key: %q", r.body)
	}
	// Each answer is counted under its own route too.
	metrics := string(n.do(t, http.MethodGet, "/metrics", nil).body)
	for _, want := range []string{
		`raftkv_http_requests_total{code="200",method="POST",route="v1_batch"} 1`,
		`raftkv_http_requests_total{code="412",method="PUT",route="v1_kv"} 1`,
		`raftkv_http_requests_total{code="404",method="GET",route="v1_kv"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestBatchConcurrentWrites checks that the writes of one batch are all
// applied, each at its own revision.
func TestBatchConcurrentWrites(t *testing.T) {
	n := startSingleNode(t)
	var reqs []wire.BatchRequest
	for i := range 40 {
		reqs = append(reqs, wire.BatchRequest{Method: "PUT", Target: "/v1/kv/k" + strconv.Itoa(i), Body: []byte(strconv.Itoa(i))})
	}
	_, a := n.mustBatch(t, nil, reqs...)
	seen := map[uint64]bool{}
	for i, ans := range a {
		var put putResponse
		decodeStrict(t, response{status: ans.Status, header: ans.Header, body: ans.Body}, &put)
		if ans.Status != http.StatusOK || seen[put.Revision] {
			t.Fatalf("put %d: %d %s (revision seen before: %v)", i, ans.Status, ans.Body, seen[put.Revision])
		}
		seen[put.Revision] = true
	}
	for i := range 40 {
		if r := n.do(t, http.MethodGet, "/v1/kv/k"+strconv.Itoa(i), nil); string(r.body) != strconv.Itoa(i) {
			t.Fatalf("k%d = %d %q", i, r.status, r.body)
		}
	}
}

// TestBatchRefusals checks what is refused: a body that is not a batch, as
// a whole; a request a batch may not carry, on its own.
func TestBatchRefusals(t *testing.T) {
	n := startSingleNode(t)
	batch := func(reqs ...wire.BatchRequest) []byte { return wire.AppendBatchRequests(nil, reqs) }
	ct := http.Header{"Content-Type": {wire.BatchContentType}}
	expect(t, "no content type", n.do(t, http.MethodPost, "/v1/batch", batch()), http.StatusUnsupportedMediaType, "invalid_batch")
	expect(t, "not a batch", n.doHeader(t, http.MethodPost, "/v1/batch", ct, []byte("{}")), http.StatusBadRequest, "invalid_batch")
	expect(t, "cut short", n.doHeader(t, http.MethodPost, "/v1/batch", ct, batch(wire.BatchRequest{Method: "GET", Target: "/v1/kv/k"})[:5]), http.StatusBadRequest, "invalid_batch")
	expect(t, "a parameter", n.doHeader(t, http.MethodPost, "/v1/batch?x=1", ct, batch()), http.StatusBadRequest, "invalid_parameter")
	expect(t, "GET", n.do(t, http.MethodGet, "/v1/batch", nil), http.StatusMethodNotAllowed, "method_not_allowed")
	big := bytes.Repeat([]byte("x"), testMaxRequest)
	expect(t, "over the body limit", n.doHeader(t, http.MethodPost, "/v1/batch", ct, batch(wire.BatchRequest{Method: "PUT", Target: "/v1/kv/k", Body: big})), http.StatusRequestEntityTooLarge, "request_too_large")

	_, a := n.mustBatch(t, nil,
		wire.BatchRequest{Method: "POST", Target: "/v1/txn", Body: []byte(`{}`)},
		wire.BatchRequest{Method: "GET", Target: "/v1/kv/?prefix="},
		wire.BatchRequest{Method: "DELETE", Target: "/v1/members/2"},
		wire.BatchRequest{Method: "POST", Target: "/v1/batch"},
		wire.BatchRequest{Method: "GET", Target: "/k"},
		wire.BatchRequest{Method: "PATCH", Target: "/v1/kv/k"},
		wire.BatchRequest{Method: "GET", Target: "v1/kv/k"},
		wire.BatchRequest{Method: "GET", Target: "/v1/kv/k", Header: http.Header{"Authorization": {"Basic eDp5"}}},
		wire.BatchRequest{Method: "GET", Target: "/v1/kv/%zz"},
		wire.BatchRequest{Method: "GET", Target: "/v1/kv/" + strings.Repeat("k", testMaxKey+1)},
		wire.BatchRequest{Method: "PUT", Target: "/v1/kv/ok", Body: []byte("fine")},
	)
	for i, code := range []string{"not_batchable", "not_batchable", "not_batchable", "not_batchable", "not_batchable", "not_batchable", "invalid_batch", "invalid_batch", "", "key_too_large"} {
		if code == "" {
			continue
		}
		if got := answerCode(t, a[i]); got != code || a[i].Status == http.StatusOK {
			t.Errorf("answer %d: %d %s, want %s", i, a[i].Status, a[i].Body, code)
		}
	}
	if a[8].Status != http.StatusBadRequest {
		t.Errorf("a malformed escape: %d %s", a[8].Status, a[8].Body)
	}
	if a[10].Status != http.StatusOK {
		t.Errorf("the good request among refused ones: %d %s", a[10].Status, a[10].Body)
	}
}

// TestBatchAccess checks that the batch carries its caller's identity and
// that each request in it is checked on its own key.
func TestBatchAccess(t *testing.T) {
	store := authStoreWith(t, map[string]any{
		"app": map[string]any{"read": []string{"app/"}, "write": []string{"app/"}},
	})
	n := startSingleNodeWith(t, nodeOptions{limits: func(c *httpapi.Config) { c.Auth = store }})
	get := wire.BatchRequest{Method: "GET", Target: "/v1/kv/app/k"}
	r, _ := n.doBatch(t, nil, get)
	expect(t, "a batch without credentials", r, http.StatusUnauthorized, "auth_required")
	_, a := n.mustBatch(t, as("app"),
		wire.BatchRequest{Method: "PUT", Target: "/v1/kv/app/k", Body: []byte("mine")},
		wire.BatchRequest{Method: "PUT", Target: "/v1/kv/other", Body: []byte("theirs")},
		wire.BatchRequest{Method: "GET", Target: "/v1/kv/other"},
	)
	if a[0].Status != http.StatusOK {
		t.Fatalf("app's own put: %d %s", a[0].Status, a[0].Body)
	}
	for _, i := range []int{1, 2} {
		if a[i].Status != http.StatusForbidden || answerCode(t, a[i]) != "permission_denied" {
			t.Fatalf("answer %d: %d %s, want 403", i, a[i].Status, a[i].Body)
		}
	}
}

// TestBatchTakesSlots checks that each request in a batch takes a request
// slot of its own, so a batch cannot put more requests in progress than
// --max-concurrent-requests lets separate ones: with two of three slots held
// by bodies that never arrive, a batch takes the third and every request in
// it is answered 503 busy; once the slots are free, the same batch is served.
func TestBatchTakesSlots(t *testing.T) {
	n := startSingleNodeWith(t, nodeOptions{limits: func(c *httpapi.Config) { c.MaxConcurrentRequests = 3 }})
	slow := []net.Conn{holdSlot(t, n), holdSlot(t, n), holdSlot(t, n)}
	wantBusy(t, n.do(t, http.MethodGet, "/v1/kv/k", nil))
	slow[0].Close()
	waitFor(t, "a slot free", func() bool {
		return n.do(t, http.MethodGet, "/v1/kv/k", nil).status == http.StatusNotFound
	})
	reqs := []wire.BatchRequest{
		{Method: "PUT", Target: "/v1/kv/a", Body: []byte("v")},
		{Method: "GET", Target: "/v1/kv/a"},
	}
	_, a := n.mustBatch(t, nil, reqs...)
	for _, ans := range a {
		wantBusy(t, response{status: ans.Status, header: ans.Header, body: ans.Body})
	}
	for _, c := range slow[1:] {
		c.Close()
	}
	// Each slow body's handler lets its slot go when it notices its
	// connection closed, one after the other: a batch of one request (two
	// slots) can get through while a batch of two (three) cannot yet.
	waitFor(t, "every slot free", func() bool {
		_, a := n.mustBatch(t, nil, reqs...)
		return a[0].Status == http.StatusOK && a[1].Status == http.StatusOK
	})
	if _, a := n.mustBatch(t, nil, reqs...); a[0].Status != http.StatusOK || a[1].Status != http.StatusOK {
		t.Fatalf("the batch with free slots: %d %s, %d %s", a[0].Status, a[0].Body, a[1].Status, a[1].Body)
	}
}
