//go:build unix

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rawAnswer is a response read off a raw connection.
type rawAnswer struct {
	status int
	header http.Header
	body   string
}

// sendRaw writes req, a complete HTTP/1.1 request as bytes, to m's client
// port, closes the connection's write side when halfClose is set (so that a
// body shorter than its Content-Length ends), and reads the answer.
func sendRaw(m *member, req string, halfClose bool) (rawAnswer, error) {
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(m.port), 5*time.Second)
	if err != nil {
		return rawAnswer{}, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return rawAnswer{}, err
	}
	if _, err := io.WriteString(conn, req); err != nil {
		return rawAnswer{}, err
	}
	if halfClose {
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			return rawAnswer{}, err
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return rawAnswer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return rawAnswer{}, err
	}
	return rawAnswer{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// badRequest is one malformed request and the answer it must get.
type badRequest struct {
	name   string
	method string
	target string // the raw request target, sent as is
	header []string
	body   string
	// raw, when set, is the whole request instead (framing errors).
	raw       string
	halfClose bool

	status int
	// code is the JSON error code; empty for answers that net/http gives
	// before the request reaches raftkv (a malformed request line or
	// framing), which are not JSON.
	code  string
	allow string // the Allow header of a 405
}

func (b badRequest) bytes() string {
	if b.raw != "" {
		return b.raw
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s HTTP/1.1\r\nHost: raftkv\r\nConnection: close\r\n", b.method, b.target)
	for _, h := range b.header {
		sb.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&sb, "Content-Length: %d\r\n\r\n%s", len(b.body), b.body)
	return sb.String()
}

// badRequests is every kind of malformed request the client API can
// receive, for a three-node cluster with default limits whose members'
// peer URLs are peers.
func badRequests(peers []string) []badRequest {
	longKey := strings.Repeat("k", 4097)            // --max-key-bytes 4096
	bigBody := strings.Repeat("v", 3<<19+1)         // --max-request-bytes 1.5 MiB
	bigMember := strings.Repeat(" ", 64<<10) + "{}" // member bodies: 64 KiB
	newPeer := "http://127.0.0.1:1"
	const rootAllow, kvAllow = "GET, HEAD, PUT, POST, DELETE", "GET, HEAD, PUT, DELETE"
	return []badRequest{
		// Root API: keys.
		{name: "root PUT empty key", method: "PUT", target: "/", body: "v", status: 400, code: "empty_key"},
		{name: "root GET empty key", method: "GET", target: "/", status: 400, code: "empty_key"},
		{name: "root PUT key too large", method: "PUT", target: "/" + longKey, body: "v", status: 413, code: "key_too_large"},
		{name: "root PUT body too large", method: "PUT", target: "/big", body: bigBody, status: 413, code: "request_too_large"},
		{name: "root GET bad consistency", method: "GET", target: "/k?consistency=eventual", status: 400, code: "invalid_consistency"},
		{name: "root bad escape", method: "PUT", target: "/%zz", body: "v", status: 400},
		{name: "root PATCH", method: "PATCH", target: "/k", body: "v", status: 405, code: "method_not_allowed", allow: rootAllow},
		{name: "root OPTIONS", method: "OPTIONS", target: "/k", status: 405, code: "method_not_allowed", allow: rootAllow},
		{name: "root reserved metrics subpath", method: "PUT", target: "/metrics/x", body: "v", status: 404, code: "not_found"},
		{name: "root reserved escaped", method: "PUT", target: "/%6cive%7a", body: "v", status: 404, code: "not_found"},
		// An escaped v1 (/v1%2Fkv, /%761) should be refused the same way
		// but is taken as a key: see TestRootRefusesEscapedV1 (httpapi).
		// Root API: members.
		{name: "root POST member id not a number", method: "POST", target: "/abc", body: newPeer, status: 400, code: "invalid_member_id"},
		{name: "root POST member id zero", method: "POST", target: "/0", body: newPeer, status: 400, code: "invalid_member_id"},
		{name: "root POST member id negative", method: "POST", target: "/-1", body: newPeer, status: 400, code: "invalid_member_id"},
		{name: "root POST member id overflow", method: "POST", target: "/18446744073709551616", body: newPeer, status: 400, code: "invalid_member_id"},
		{name: "root POST empty peer URL", method: "POST", target: "/4", status: 400, code: "invalid_peer_url"},
		{name: "root POST peer URL not a URL", method: "POST", target: "/4", body: "not a url", status: 400, code: "invalid_peer_url"},
		{name: "root POST peer URL without port", method: "POST", target: "/4", body: "http://127.0.0.1", status: 400, code: "invalid_peer_url"},
		{name: "root POST peer URL bad scheme", method: "POST", target: "/4", body: "ftp://127.0.0.1:1", status: 400, code: "invalid_peer_url"},
		{name: "root POST peer URL with path", method: "POST", target: "/4", body: newPeer + "/raft", status: 400, code: "invalid_peer_url"},
		{name: "root POST peer URL too large", method: "POST", target: "/4", body: newPeer + strings.Repeat("0", 4<<10), status: 413, code: "request_too_large"},
		{name: "root POST existing member", method: "POST", target: "/2", body: newPeer, status: 409, code: "member_exists"},
		{name: "root POST peer URL in use", method: "POST", target: "/4", body: peers[1], status: 409, code: "peer_url_exists"},
		{name: "root DELETE member id not a number", method: "DELETE", target: "/abc", status: 400, code: "invalid_member_id"},
		{name: "root DELETE member id zero", method: "DELETE", target: "/0", status: 400, code: "invalid_member_id"},
		{name: "root DELETE unknown member", method: "DELETE", target: "/9", status: 404, code: "member_not_found"},

		// /v1/kv: keys, conditions, limits.
		{name: "v1 PUT empty key", method: "PUT", target: "/v1/kv/", body: "v", status: 400, code: "empty_key"},
		{name: "v1 DELETE without prefix", method: "DELETE", target: "/v1/kv/", status: 400, code: "empty_key"},
		{name: "v1 PUT key too large", method: "PUT", target: "/v1/kv/" + longKey, body: "v", status: 413, code: "key_too_large"},
		{name: "v1 PUT body too large", method: "PUT", target: "/v1/kv/big", body: bigBody, status: 413, code: "request_too_large"},
		{name: "v1 PATCH", method: "PATCH", target: "/v1/kv/k", body: "v", status: 405, code: "method_not_allowed", allow: kvAllow},
		{name: "v1 POST", method: "POST", target: "/v1/kv/k", body: "v", status: 405, code: "method_not_allowed", allow: kvAllow},
		{name: "If-Match not a revision", method: "PUT", target: "/v1/kv/k", header: []string{"If-Match: abc"}, body: "v", status: 400, code: "invalid_precondition"},
		{name: "If-Match weak", method: "PUT", target: "/v1/kv/k", header: []string{`If-Match: W/"1"`}, body: "v", status: 400, code: "invalid_precondition"},
		{name: "If-Match zero", method: "PUT", target: "/v1/kv/k", header: []string{`If-Match: "0"`}, body: "v", status: 400, code: "invalid_precondition"},
		{name: "If-Match negative", method: "PUT", target: "/v1/kv/k", header: []string{`If-Match: "-1"`}, body: "v", status: 400, code: "invalid_precondition"},
		{name: "If-Match overflow", method: "PUT", target: "/v1/kv/k", header: []string{`If-Match: "18446744073709551616"`}, body: "v", status: 400, code: "invalid_precondition"},
		{name: "If-Match list", method: "PUT", target: "/v1/kv/k", header: []string{`If-Match: "1", "2"`}, body: "v", status: 400, code: "invalid_precondition"},
		{name: "If-Match twice", method: "PUT", target: "/v1/kv/k", header: []string{`If-Match: "1"`, `If-Match: "2"`}, body: "v", status: 400, code: "invalid_precondition"},
		{name: "If-Match unbalanced quote", method: "PUT", target: "/v1/kv/k", header: []string{`If-Match: "1`}, body: "v", status: 400, code: "invalid_precondition"},
		{name: "If-Match empty", method: "PUT", target: "/v1/kv/k", header: []string{"If-Match: "}, body: "v", status: 400, code: "invalid_precondition"},
		{name: "If-None-Match not star", method: "PUT", target: "/v1/kv/k", header: []string{`If-None-Match: "5"`}, body: "v", status: 400, code: "invalid_precondition"},
		{name: "both conditions", method: "PUT", target: "/v1/kv/k", header: []string{`If-Match: "1"`, "If-None-Match: *"}, body: "v", status: 400, code: "invalid_precondition"},
		{name: "DELETE If-None-Match", method: "DELETE", target: "/v1/kv/k", header: []string{"If-None-Match: *"}, status: 400, code: "invalid_precondition"},
		{name: "If-Match on an absent key", method: "PUT", target: "/v1/kv/absent", header: []string{`If-Match: "999999"`}, body: "v", status: 412, code: "precondition_failed"},
		{name: "DELETE If-Match on an absent key", method: "DELETE", target: "/v1/kv/absent", header: []string{"If-Match: *"}, status: 412, code: "precondition_failed"},
		{name: "range delete with If-Match", method: "DELETE", target: "/v1/kv/?prefix=a", header: []string{`If-Match: "1"`}, status: 400, code: "invalid_precondition"},
		{name: "range delete prefix too large", method: "DELETE", target: "/v1/kv/?prefix=" + longKey, status: 413, code: "key_too_large"},
		{name: "range delete repeated prefix", method: "DELETE", target: "/v1/kv/?prefix=a&prefix=", status: 400, code: "invalid_parameter"},
		// /v1/kv: query strings.
		{name: "prefix on a key", method: "DELETE", target: "/v1/kv/k?prefix=", status: 400, code: "invalid_parameter"},
		{name: "list limit zero", method: "GET", target: "/v1/kv/?limit=0", status: 400, code: "invalid_limit"},
		{name: "list limit too large", method: "GET", target: "/v1/kv/?limit=10001", status: 400, code: "invalid_limit"},
		{name: "list limit not a number", method: "GET", target: "/v1/kv/?limit=ten", status: 400, code: "invalid_limit"},
		{name: "list limit signed", method: "GET", target: "/v1/kv/?limit=+5", status: 400, code: "invalid_limit"},
		{name: "list bad cursor", method: "GET", target: "/v1/kv/?cursor=***", status: 400, code: "invalid_cursor"},
		{name: "list empty cursor", method: "GET", target: "/v1/kv/?cursor=", status: 400, code: "invalid_cursor"},
		{name: "list keys_only not a bool", method: "GET", target: "/v1/kv/?keys_only=yes", status: 400, code: "invalid_parameter"},
		{name: "list repeated parameter", method: "GET", target: "/v1/kv/?limit=1&limit=2", status: 400, code: "invalid_parameter"},
		{name: "list bad encoding", method: "GET", target: "/v1/kv/?encoding=hex", status: 400, code: "invalid_encoding"},
		{name: "get takes no encoding", method: "GET", target: "/v1/kv/k?encoding=text", status: 400, code: "invalid_parameter"},
		{name: "query bad escape", method: "GET", target: "/v1/kv/?prefix=%zz", status: 400, code: "invalid_parameter"},
		{name: "query semicolon", method: "GET", target: "/v1/kv/?prefix=a;b", status: 400, code: "invalid_parameter"},
		{name: "get bad consistency", method: "GET", target: "/v1/kv/k?consistency=eventual", status: 400, code: "invalid_consistency"},
		{name: "v1 key bad escape", method: "GET", target: "/v1/kv/%zz", status: 400},
		// /v1/watch.
		{name: "watch POST", method: "POST", target: "/v1/watch/k", status: 405, code: "method_not_allowed", allow: "GET"},
		{name: "watch empty key", method: "GET", target: "/v1/watch/", status: 400, code: "empty_key"},
		{name: "watch from zero", method: "GET", target: "/v1/watch/k?from=0", status: 400, code: "invalid_revision"},
		{name: "watch from not a number", method: "GET", target: "/v1/watch/k?from=x", status: 400, code: "invalid_revision"},
		{name: "watch prefix not a bool", method: "GET", target: "/v1/watch/k?prefix=1", status: 400, code: "invalid_parameter"},
		{name: "watch bad encoding", method: "GET", target: "/v1/watch/k?encoding=utf8", status: 400, code: "invalid_encoding"},
		{name: "watch bad Last-Event-ID", method: "GET", target: "/v1/watch/k", header: []string{"Last-Event-ID: abc"}, status: 400, code: "invalid_revision"},
		{name: "watch key too large", method: "GET", target: "/v1/watch/" + longKey, status: 413, code: "key_too_large"},
		// Unknown paths.
		{name: "v1 unknown section", method: "GET", target: "/v1/nope", status: 404, code: "not_found"},
		{name: "v1 root", method: "GET", target: "/v1/", status: 404, code: "not_found"},
		{name: "v1 kv without slash", method: "GET", target: "/v1/kv", status: 404, code: "not_found"},
		{name: "v1 status subpath", method: "GET", target: "/v1/status/x", status: 404, code: "not_found"},
		{name: "v1 leader", method: "POST", target: "/v1/leader", status: 404, code: "not_found"},
		{name: "v1 member subresource", method: "POST", target: "/v1/members/2/demote", status: 404, code: "not_found"},
		{name: "v1 member empty id", method: "DELETE", target: "/v1/members/", status: 404, code: "not_found"},
		// Wrong methods on the operations endpoints.
		{name: "status DELETE", method: "DELETE", target: "/v1/status", status: 405, code: "method_not_allowed", allow: "GET, HEAD"},
		{name: "members PUT", method: "PUT", target: "/v1/members", body: "{}", status: 405, code: "method_not_allowed", allow: "GET, HEAD, POST"},
		{name: "member GET", method: "GET", target: "/v1/members/2", status: 405, code: "method_not_allowed", allow: "PUT, DELETE"},
		{name: "promote GET", method: "GET", target: "/v1/members/2/promote", status: 405, code: "method_not_allowed", allow: "POST"},
		{name: "transfer GET", method: "GET", target: "/v1/leader/transfer", status: 405, code: "method_not_allowed", allow: "POST"},
		{name: "livez POST", method: "POST", target: "/livez", status: 405, code: "method_not_allowed", allow: "GET, HEAD"},
		{name: "readyz DELETE", method: "DELETE", target: "/readyz", status: 405, code: "method_not_allowed", allow: "GET, HEAD"},
		{name: "metrics PUT", method: "PUT", target: "/metrics", body: "v", status: 405, code: "method_not_allowed", allow: "GET, HEAD"},
		// /v1/members bodies and ids.
		{name: "add member empty body", method: "POST", target: "/v1/members", status: 400, code: "invalid_member"},
		{name: "add member bad JSON", method: "POST", target: "/v1/members", body: `{"peer_urls": [`, status: 400, code: "invalid_member"},
		{name: "add member not an object", method: "POST", target: "/v1/members", body: `["http://127.0.0.1:1"]`, status: 400, code: "invalid_member"},
		{name: "add member no peer URLs", method: "POST", target: "/v1/members", body: `{"id": 4}`, status: 400, code: "invalid_member"},
		{name: "add member empty peer URLs", method: "POST", target: "/v1/members", body: `{"id": 4, "peer_urls": []}`, status: 400, code: "invalid_member"},
		{name: "add member unknown field", method: "POST", target: "/v1/members", body: `{"id": 4, "peer_urls": ["` + newPeer + `"], "voter": true}`, status: 400, code: "invalid_member"},
		{name: "add member id as string", method: "POST", target: "/v1/members", body: `{"id": "4", "peer_urls": ["` + newPeer + `"]}`, status: 400, code: "invalid_member"},
		{name: "add member negative id", method: "POST", target: "/v1/members", body: `{"id": -4, "peer_urls": ["` + newPeer + `"]}`, status: 400, code: "invalid_member"},
		{name: "add member trailing data", method: "POST", target: "/v1/members", body: `{"id": 4, "peer_urls": ["` + newPeer + `"]} {}`, status: 400, code: "invalid_member"},
		{name: "add member body too large", method: "POST", target: "/v1/members", body: bigMember, status: 413, code: "request_too_large"},
		{name: "add member bad peer URL", method: "POST", target: "/v1/members", body: `{"id": 4, "peer_urls": ["127.0.0.1:1"]}`, status: 400, code: "invalid_peer_url"},
		{name: "add member duplicate peer URL", method: "POST", target: "/v1/members", body: `{"id": 4, "peer_urls": ["` + newPeer + `", "` + newPeer + `"]}`, status: 400, code: "invalid_peer_url"},
		{name: "add member existing id", method: "POST", target: "/v1/members", body: `{"id": 2, "peer_urls": ["` + newPeer + `"]}`, status: 409, code: "member_exists"},
		{name: "add member peer URL in use", method: "POST", target: "/v1/members", body: `{"id": 4, "peer_urls": ["` + peers[2] + `"], "learner": true}`, status: 409, code: "peer_url_exists"},
		{name: "update member id not a number", method: "PUT", target: "/v1/members/two", body: `{"peer_urls": ["` + newPeer + `"]}`, status: 400, code: "invalid_member_id"},
		{name: "update member id zero", method: "PUT", target: "/v1/members/0", body: `{"peer_urls": ["` + newPeer + `"]}`, status: 400, code: "invalid_member_id"},
		{name: "update member empty body", method: "PUT", target: "/v1/members/2", status: 400, code: "invalid_member"},
		{name: "update member no peer URLs", method: "PUT", target: "/v1/members/2", body: `{}`, status: 400, code: "invalid_member"},
		{name: "update member bad peer URL", method: "PUT", target: "/v1/members/2", body: `{"peer_urls": ["http://127.0.0.1"]}`, status: 400, code: "invalid_peer_url"},
		{name: "update member peer URL in use", method: "PUT", target: "/v1/members/2", body: `{"peer_urls": ["` + peers[0] + `"]}`, status: 409, code: "peer_url_exists"},
		{name: "update unknown member", method: "PUT", target: "/v1/members/9", body: `{"peer_urls": ["` + newPeer + `"]}`, status: 404, code: "member_not_found"},
		{name: "remove unknown member", method: "DELETE", target: "/v1/members/9", status: 404, code: "member_not_found"},
		{name: "remove member id hex garbage", method: "DELETE", target: "/v1/members/0xzz", status: 400, code: "invalid_member_id"},
		{name: "promote a voter", method: "POST", target: "/v1/members/2/promote", status: 409, code: "not_learner"},
		{name: "promote unknown member", method: "POST", target: "/v1/members/9/promote", status: 404, code: "member_not_found"},
		{name: "transfer bad JSON", method: "POST", target: "/v1/leader/transfer", body: `{"to":`, status: 400, code: "bad_body"},
		{name: "transfer to as string", method: "POST", target: "/v1/leader/transfer", body: `{"to": "2"}`, status: 400, code: "bad_body"},
		{name: "transfer to unknown member", method: "POST", target: "/v1/leader/transfer", body: `{"to": 9}`, status: 404, code: "member_not_found"},
		// Framing: what net/http refuses before raftkv sees it, and bodies
		// that end early.
		{name: "Content-Length not a number", raw: "PUT /cl HTTP/1.1\r\nHost: raftkv\r\nContent-Length: abc\r\n\r\nv", status: 400},
		{name: "Content-Length negative", raw: "PUT /cl HTTP/1.1\r\nHost: raftkv\r\nContent-Length: -1\r\n\r\nv", status: 400},
		{name: "Content-Length twice, different", raw: "PUT /cl HTTP/1.1\r\nHost: raftkv\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nvv", status: 400},
		{name: "no Host", raw: "PUT /cl HTTP/1.1\r\nContent-Length: 1\r\n\r\nv", status: 400},
		{name: "malformed request line", raw: "PUT /cl\r\nHost: raftkv\r\n\r\n", status: 400},
		{name: "root PUT truncated body", raw: "PUT /truncated HTTP/1.1\r\nHost: raftkv\r\nContent-Length: 100\r\n\r\nonly part", halfClose: true, status: 400, code: "bad_body"},
		{name: "v1 PUT truncated body", raw: "PUT /v1/kv/truncated HTTP/1.1\r\nHost: raftkv\r\nContent-Length: 100\r\n\r\nonly part", halfClose: true, status: 400, code: "bad_body"},
		{name: "v1 PUT bad chunked body", raw: "PUT /v1/kv/chunked HTTP/1.1\r\nHost: raftkv\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nv\r\n0\r\n\r\n", halfClose: true, status: 400, code: "bad_body"},
		{name: "add member truncated body", raw: "POST /v1/members HTTP/1.1\r\nHost: raftkv\r\nContent-Length: 100\r\n\r\n{\"peer_urls\"", halfClose: true, status: 400, code: "bad_body"},
	}
}

// clusterState is what a bad request must not change.
type clusterState struct {
	revisions []uint64 // per member
	keys      []uint64
	members   string // GET /v1/members: ids, peer URLs, learner flags
}

func stateOf(t *testing.T, c *cluster) clusterState {
	t.Helper()
	var s clusterState
	for _, m := range c.members {
		st := statusOf(t, m)
		s.revisions = append(s.revisions, st.Revision)
		s.keys = append(s.keys, st.Keys)
	}
	r, err := do(http.MethodGet, c.members[0].url("v1/members"), "")
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("GET /v1/members: %v %v", r, err)
	}
	var l memberList
	if err := json.Unmarshal([]byte(r.body), &l); err != nil {
		t.Fatal(err)
	}
	var ms []string
	for _, m := range l.Members {
		ms = append(ms, fmt.Sprintf("%d %v learner=%v", m.ID, m.PeerURLs, m.IsLearner))
	}
	slices.Sort(ms)
	s.members = strings.Join(ms, "; ")
	return s
}

// TestBadInput fires every kind of malformed request at each member of a
// real three-node cluster and checks the exact answer (status, JSON error
// code, Allow on 405), that nothing changed (every member's store revision
// and key count, the member table), and that every process still serves:
// /livez answers and a write after the table succeeds everywhere.
func TestBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := startCluster(t, 3)
	peers := make([]string, len(c.members))
	for i, m := range c.members {
		peers[i] = m.peerURL
	}
	// Every member has applied the probe write of startCluster, so all
	// revisions agree before the table.
	for _, m := range c.members {
		waitValue(t, m, "e2e-probe", "ok")
	}
	before := stateOf(t, c)

	for _, m := range c.members {
		for _, tt := range badRequests(peers) {
			name := m.name + ": " + tt.name
			var got rawAnswer
			err := eventually(leaderTimeout, func() error {
				var err error
				got, err = sendRaw(m, tt.bytes(), tt.halfClose)
				if err == nil && got.status == http.StatusServiceUnavailable {
					return fmt.Errorf("503 %s", got.body) // no leader for a moment: nothing changed, try again
				}
				return err
			})
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if got.status != tt.status {
				t.Errorf("%s: status %d, want %d: %s", name, got.status, tt.status, strings.TrimSpace(got.body))
				continue
			}
			if tt.allow != "" && got.header.Get("Allow") != tt.allow {
				t.Errorf("%s: Allow %q, want %q", name, got.header.Get("Allow"), tt.allow)
			}
			if tt.code == "" {
				continue // net/http's own answer, not raftkv's
			}
			var e struct{ Error, Code string }
			if ct := got.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s: Content-Type %q, want application/json", name, ct)
			}
			if err := json.Unmarshal([]byte(got.body), &e); err != nil || e.Error == "" {
				t.Errorf("%s: the body is not a JSON error (%v): %q", name, err, got.body)
			} else if e.Code != tt.code {
				t.Errorf("%s: code %q, want %q (%s)", name, e.Code, tt.code, e.Error)
			}
		}
	}

	if after := stateOf(t, c); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("bad requests changed the cluster:\nbefore %+v\nafter  %+v", before, after)
	}
	for i, m := range c.members {
		if m.proc.Exited() {
			t.Fatalf("%s exited", m.name)
		}
		mustDo(t, http.MethodGet, m.url("livez"), "", http.StatusOK)
		key := "after-bad-input-" + strconv.Itoa(i)
		mustPut(t, m, key, "ok")
		mustGet(t, m, key, "ok", false)
	}
}
