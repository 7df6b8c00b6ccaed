//go:build unix

package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Secrets of the auth test's file. Each is distinctive so that the logs can
// be searched for it.
const (
	rootPassword   = "root-Secret-7f3a"
	readerPassword = "reader-Secret-91bc"
	appPassword    = "app-Secret-c04e"
	latePassword   = "late-Secret-55d1"
)

// authFixture is a cluster with access control on, and its credentials.
type authFixture struct {
	c        *cluster
	dir      string
	authFile string
	hashes   map[string]string // user -> bcrypt hash
	token    string            // token "ci": read and write under app/
	creds    map[string]string // identity -> Authorization header
}

// hashWithCLI makes a password hash the way the docs say, raftkv auth hash,
// at bcrypt's least cost: the race detector makes the default cost take
// seconds a check, and the cost does not change what is checked.
func hashWithCLI(t *testing.T, dir, password string) string {
	t.Helper()
	cmd := runRaftkvStdin(t, dir, password+"\n", "auth", "hash", "--cost", "4")
	if cmd.code != 0 {
		t.Fatalf("raftkv auth hash: exit %d: %s", cmd.code, cmd.stderr)
	}
	return strings.TrimSpace(cmd.stdout)
}

func (f *authFixture) writeAuthFile(t *testing.T, users map[string]map[string]any) {
	t.Helper()
	doc := map[string]any{"users": users, "tokens": map[string]any{
		"ci": map[string]any{"token_hash": f.hashes["token:ci"], "read": []string{"app/"}, "write": []string{"app/"}},
	}}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.authFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (f *authFixture) users() map[string]map[string]any {
	return map[string]map[string]any{
		"root":   {"password_hash": f.hashes["root"], "admin": true},
		"reader": {"password_hash": f.hashes["reader"], "read": []string{""}},
		"app":    {"password_hash": f.hashes["app"], "read": []string{"app/"}, "write": []string{"app/"}},
	}
}

func basicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func startAuthCluster(t *testing.T) *authFixture {
	t.Helper()
	dir := t.TempDir()
	f := &authFixture{dir: dir, authFile: filepath.Join(dir, "auth.json"), hashes: map[string]string{}}
	f.hashes["root"] = hashWithCLI(t, dir, rootPassword)
	f.hashes["reader"] = hashWithCLI(t, dir, readerPassword)
	f.hashes["app"] = hashWithCLI(t, dir, appPassword)
	tok := runRaftkv(t, dir, nil, "auth", "token", "ci", "-o", "json", "--cost", "4")
	var made struct {
		Token     string `json:"token"`
		TokenHash string `json:"token_hash"`
	}
	if err := json.Unmarshal([]byte(tok.stdout), &made); err != nil || tok.code != 0 {
		t.Fatalf("raftkv auth token: exit %d %v: %s%s", tok.code, err, tok.stdout, tok.stderr)
	}
	f.token, f.hashes["token:ci"] = made.Token, made.TokenHash
	f.writeAuthFile(t, f.users())
	f.creds = map[string]string{
		"none":   "",
		"wrong":  basicAuth("app", "not-the-password"),
		"reader": basicAuth("reader", readerPassword),
		"app":    basicAuth("app", appPassword),
		"token":  "Bearer " + f.token,
		"root":   basicAuth("root", rootPassword),
	}
	// Debug logging on every node, so that refused credentials are logged
	// (without their secrets) and the check below sees those lines.
	f.c = startCluster(t, 3, "--auth-file", f.authFile, "--log-level", "debug")
	mustDoAs(t, f.creds["root"], http.MethodPut, f.c.members[0].url("e2e-probe"), "ok", http.StatusNoContent)
	return f
}

// doAs sends a request with an Authorization header ("" for none).
func doAs(authorization, method, url, body string, header ...string) (response, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, body: string(b)}, nil
}

// mustDoAs is mustDo with credentials.
func mustDoAs(t *testing.T, authorization, method, url, body string, want int) response {
	t.Helper()
	var r response
	err := eventually(leaderTimeout, func() error {
		var err error
		r, err = doAs(authorization, method, url, body)
		if retryable(r, err) {
			return fmt.Errorf("%s %s: %v %v", method, url, r, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.status != want {
		t.Fatalf("%s %s: got %v, want %d", method, url, r, want)
	}
	return r
}

// watchStatus opens a watch and returns its status without reading the
// stream.
func watchStatus(authorization, url string) (int, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestAuthEveryEndpoint sends every route of the client API as every kind of
// caller and checks the exact status, that a refused request changed
// nothing, and that no secret reaches a log.
func TestAuthEveryEndpoint(t *testing.T) {
	f := startAuthCluster(t)
	m := f.c.members[0]
	base := "http://127.0.0.1:" + strconv.Itoa(m.port)
	root := f.creds["root"]
	mustDoAs(t, root, http.MethodPut, m.url("app/k"), "app-value", http.StatusNoContent)
	mustDoAs(t, root, http.MethodPut, m.url("other"), "other-value", http.StatusNoContent)

	const (
		deny   = http.StatusForbidden
		unauth = http.StatusUnauthorized
		ok     = http.StatusOK
		nc     = http.StatusNoContent
	)
	// Statuses by caller: none, wrong password, reader, app, token, root.
	type want [6]int
	callers := []string{"none", "wrong", "reader", "app", "token", "root"}
	rows := []struct {
		method, path, body string
		want               want
	}{
		{"GET", "/livez", "", want{ok, ok, ok, ok, ok, ok}},
		{"GET", "/readyz", "", want{ok, ok, ok, ok, ok, ok}},
		{"GET", "/health", "", want{unauth, unauth, ok, ok, ok, ok}},
		{"GET", "/metrics", "", want{unauth, unauth, ok, ok, ok, ok}},
		{"GET", "/v1/status", "", want{unauth, unauth, ok, ok, ok, ok}},
		{"GET", "/v1/stats", "", want{unauth, unauth, ok, ok, ok, ok}},
		{"GET", "/v1/auth/self", "", want{unauth, unauth, ok, ok, ok, ok}},
		{"GET", "/v1/members/1/status", "", want{unauth, unauth, ok, ok, ok, ok}},
		// The dashboard's files hold no data; the page then asks for
		// credentials.
		{"GET", "/ui/", "", want{ok, ok, ok, ok, ok, ok}},
		{"GET", "/app/k", "", want{unauth, unauth, ok, ok, ok, ok}},
		{"HEAD", "/app/k", "", want{unauth, unauth, ok, ok, ok, ok}},
		{"GET", "/other", "", want{unauth, unauth, ok, deny, deny, ok}},
		{"PUT", "/app/by-%s", "x", want{unauth, unauth, deny, nc, nc, nc}},
		{"PUT", "/other", "changed", want{unauth, unauth, deny, deny, deny, 0}}, // root's write is checked below
		{"GET", "/v1/kv/app/k", "", want{unauth, unauth, ok, ok, ok, ok}},
		{"GET", "/v1/kv/other", "", want{unauth, unauth, ok, deny, deny, ok}},
		{"PUT", "/v1/kv/app/v1-by-%s", "x", want{unauth, unauth, deny, ok, ok, ok}},
		{"DELETE", "/v1/kv/other", "", want{unauth, unauth, deny, deny, deny, 0}},
		{"GET", "/v1/kv/?prefix=", "", want{unauth, unauth, ok, ok, ok, ok}},
		{"DELETE", "/v1/kv/?prefix=zzz/", "", want{unauth, unauth, deny, deny, deny, ok}},
		{"DELETE", "/v1/kv/?prefix=app/none/", "", want{unauth, unauth, deny, ok, ok, ok}},
		{"GET", "/v1/watch/?prefix=true", "", want{unauth, unauth, ok, deny, deny, ok}},
		{"GET", "/v1/watch/app/k", "", want{unauth, unauth, ok, ok, ok, ok}},
		{"GET", "/v1/members", "", want{unauth, unauth, ok, ok, ok, ok}},
		{"POST", "/v1/members", "{}", want{unauth, unauth, deny, deny, deny, http.StatusBadRequest}},
		{"DELETE", "/v1/members/99", "", want{unauth, unauth, deny, deny, deny, http.StatusNotFound}},
		{"POST", "/v1/members/99/promote", "", want{unauth, unauth, deny, deny, deny, http.StatusNotFound}},
		{"PUT", "/v1/members/99", `{"peer_urls":["http://127.0.0.1:1"]}`, want{unauth, unauth, deny, deny, deny, http.StatusNotFound}},
		{"POST", "/v1/leader/transfer", `{"to": 99}`, want{unauth, unauth, deny, deny, deny, http.StatusNotFound}},
		// A transaction needs every key either branch touches.
		{"POST", "/v1/txn", `{"success": [{"get": {"key": "YXBwL2s="}}]}`, want{unauth, unauth, ok, ok, ok, ok}},
		{"POST", "/v1/txn", `{"failure": [{"put": {"key": "b3RoZXI=", "value": ""}}]}`, want{unauth, unauth, deny, deny, deny, ok}},
		// A batch's own check is any identity's; each request in it is
		// checked on its key (httpapi's TestBatchAccess). This body is
		// not a batch.
		{"POST", "/v1/batch", "", want{unauth, unauth, http.StatusUnsupportedMediaType, http.StatusUnsupportedMediaType, http.StatusUnsupportedMediaType, http.StatusUnsupportedMediaType}},
		// A backup holds every key: admin only, even for a reader of all.
		{"GET", "/v1/snapshot", "", want{unauth, unauth, deny, deny, deny, ok}},
		{"POST", "/99", "", want{unauth, unauth, deny, deny, deny, http.StatusBadRequest}},
		{"DELETE", "/99", "", want{unauth, unauth, deny, deny, deny, http.StatusNotFound}},
	}
	for _, row := range rows {
		for i, caller := range callers {
			want := row.want[i]
			if want == 0 {
				continue
			}
			path := row.path
			if strings.Contains(path, "%s") {
				path = fmt.Sprintf(path, caller)
			}
			var status int
			var body string
			err := eventually(leaderTimeout, func() error {
				var err error
				if strings.HasPrefix(path, "/v1/watch/") && caller != "none" && caller != "wrong" {
					status, err = watchStatus(f.creds[caller], base+path)
					body = ""
				} else {
					var r response
					r, err = doAs(f.creds[caller], row.method, base+path, row.body)
					status, body = r.status, r.body
				}
				if err != nil || status == http.StatusServiceUnavailable {
					return fmt.Errorf("%v %d %s", err, status, body)
				}
				return nil
			})
			if err != nil || status != want {
				t.Errorf("%s %s as %s: %d %s (%v), want %d", row.method, path, caller, status, strings.TrimSpace(body), err, want)
			}
			if status == unauth && row.method != http.MethodHead && !strings.Contains(body, `"code":"`) {
				t.Errorf("%s %s as %s: 401 without the JSON error body: %q", row.method, path, caller, body)
			}
		}
	}

	// Listings show only what the caller may read.
	r := mustDoAs(t, f.creds["app"], http.MethodGet, base+"/v1/kv/?prefix=&keys_only=true", "", http.StatusOK)
	if keys := listedKeys(t, r.body); !slices.Equal(keys, []string{"app/by-app", "app/by-root", "app/by-token", "app/k", "app/v1-by-app", "app/v1-by-root", "app/v1-by-token"}) {
		t.Errorf("app's listing of everything: %v", keys)
	}
	// Refused requests changed nothing: every key is one an allowed request
	// wrote, and other keeps its value.
	r = mustDoAs(t, root, http.MethodGet, base+"/v1/kv/?prefix=&keys_only=true", "", http.StatusOK)
	if keys := listedKeys(t, r.body); !slices.Equal(keys, []string{"app/by-app", "app/by-root", "app/by-token", "app/k", "app/v1-by-app", "app/v1-by-root", "app/v1-by-token", "e2e-probe", "other"}) {
		t.Errorf("keys after the table: %v", keys)
	}
	if r := mustDoAs(t, root, http.MethodGet, m.url("other"), "", http.StatusOK); r.body != "other-value" {
		t.Errorf("other = %q after refused writes", r.body)
	}
	// A refused range delete deleted nothing under app/ either.
	for _, mem := range f.c.members {
		mustDoAs(t, root, http.MethodGet, mem.url("livez"), "", http.StatusOK)
	}

	// No secret reaches a log, though refused credentials are logged.
	for _, mem := range f.c.members {
		log := mem.proc.Log()
		for _, secret := range []string{rootPassword, readerPassword, appPassword, "not-the-password", f.token[strings.Index(f.token, ".")+1:]} {
			if strings.Contains(log, secret) {
				t.Errorf("%s's log holds a secret", mem.name)
			}
		}
	}
	if !strings.Contains(m.proc.Log(), "authentication failed") {
		t.Error("refused credentials were not logged at debug level")
	}
}

func listedKeys(t *testing.T, body string) []string {
	t.Helper()
	var l struct {
		KVs []struct{ Key []byte } `json:"kvs"`
	}
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		t.Fatalf("listing %q: %v", body, err)
	}
	var keys []string
	for _, kv := range l.KVs {
		keys = append(keys, string(kv.Key))
	}
	return keys
}

// TestAuthForwardingAndReload checks that a follower forwards a member change
// with the caller's credentials (the leader checks them again: a forged
// forwarding header earns nothing), that SIGHUP reloads the file on every
// node, and that a bad file keeps the old one.
func TestAuthForwardingAndReload(t *testing.T) {
	f := startAuthCluster(t)
	root, app := f.creds["root"], f.creds["app"]
	leaderID := 0
	if err := eventually(leaderTimeout, func() error {
		if leaderID = leaderSeenBy(f.c.members[0]); leaderID == 0 {
			return fmt.Errorf("no leader yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	leader := f.c.members[leaderID-1]
	follower := f.c.members[leaderID%3]
	followerURL := "http://127.0.0.1:" + strconv.Itoa(follower.port)
	leaderURL := "http://127.0.0.1:" + strconv.Itoa(leader.port)

	addLearner := `{"peer_urls": ["http://127.0.0.1:1"], "learner": true}`
	mustDoAs(t, app, http.MethodPost, followerURL+"/v1/members", addLearner, http.StatusForbidden)
	r, err := doAs("", http.MethodPost, leaderURL+"/v1/members", addLearner, "X-Raftkv-Forwarded", strconv.Itoa(follower.id))
	if err != nil || r.status != http.StatusUnauthorized {
		t.Fatalf("a request that claims to be forwarded, without credentials: %v %v, want 401", r, err)
	}
	r = mustDoAs(t, root, http.MethodPost, followerURL+"/v1/members", addLearner, http.StatusCreated)
	var added struct{ ID uint64 }
	if err := json.Unmarshal([]byte(r.body), &added); err != nil || added.ID == 0 {
		t.Fatalf("added member: %q %v", r.body, err)
	}
	mustDoAs(t, app, http.MethodDelete, followerURL+"/v1/members/"+strconv.FormatUint(added.ID, 10), "", http.StatusForbidden)
	mustDoAs(t, root, http.MethodDelete, followerURL+"/v1/members/"+strconv.FormatUint(added.ID, 10), "", http.StatusOK)

	// SIGHUP reloads the file: a new user can read.
	late := basicAuth("late", latePassword)
	users := f.users()
	users["late"] = map[string]any{"password_hash": hashWithCLI(t, f.dir, latePassword), "read": []string{""}}
	mustDoAs(t, late, http.MethodGet, f.c.members[0].url("e2e-probe"), "", http.StatusUnauthorized)
	f.writeAuthFile(t, users)
	for _, mem := range f.c.members {
		if err := mem.proc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	for _, mem := range f.c.members {
		if err := eventually(leaderTimeout, func() error {
			r, err := doAs(late, http.MethodGet, mem.url("e2e-probe"), "")
			if err != nil || r.status != http.StatusOK {
				return fmt.Errorf("%s: %v %v", mem.name, r, err)
			}
			return nil
		}); err != nil {
			t.Fatalf("after SIGHUP the new user cannot read: %v", err)
		}
	}
	// A broken file is refused and the one in force stays.
	if err := os.WriteFile(f.authFile, []byte(`{"users": {"late": {"password_hash": "plain"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	m := f.c.members[0]
	if err := m.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := eventually(leaderTimeout, func() error {
		if !strings.Contains(m.proc.Log(), "auth file not reloaded") {
			return fmt.Errorf("no log line for the refused file")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustDoAs(t, late, http.MethodGet, m.url("e2e-probe"), "", http.StatusOK)
	mustDoAs(t, root, http.MethodPut, m.url("after-reload"), "x", http.StatusNoContent)

	// A reload that takes away a watcher's right ends its stream before
	// the next change; one that keeps it keeps the stream.
	appWatch := openWatch(t, app, strings.TrimSuffix(m.url(""), "/")+"/v1/watch/app/?prefix=true")
	readerWatch := openWatch(t, f.creds["reader"], strings.TrimSuffix(m.url(""), "/")+"/v1/watch/app/?prefix=true")
	users = f.users()
	users["app"]["read"] = []string{"app/narrow/"}
	f.writeAuthFile(t, users)
	if err := m.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := eventually(leaderTimeout, func() error {
		if strings.Count(m.proc.Log(), "auth file reloaded") < 2 {
			return fmt.Errorf("not reloaded yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustDoAs(t, root, http.MethodPut, m.url("app/after-narrowing"), "x", http.StatusNoContent)
	if ev := appWatch.next(t); !strings.HasPrefix(ev, "event: error") || !strings.Contains(ev, "permission_denied") {
		t.Errorf("app's watch after its read was narrowed: %q, want a permission_denied error event", ev)
	}
	if ev := readerWatch.next(t); !strings.HasPrefix(ev, "event: put") {
		t.Errorf("reader's watch after a reload that kept its right: %q, want the put", ev)
	}

	// The CLI sends credentials from flags and the environment.
	endpoints := "--endpoints=" + strings.TrimSuffix(m.url(""), "/")
	res := runRaftkv(t, f.dir, []string{"RAFTKV_USER=app", "RAFTKV_PASSWORD=" + appPassword}, "put", "app/cli", "v", endpoints)
	if res.code != 0 {
		t.Errorf("put with RAFTKV_USER/RAFTKV_PASSWORD: exit %d: %s", res.code, res.stderr)
	}
	res = runRaftkv(t, f.dir, nil, "put", "other", "v", "--token", f.token, endpoints)
	if res.code != 1 || !strings.Contains(res.stderr, "permission_denied") {
		t.Errorf("put outside the token's prefix: exit %d: %s", res.code, res.stderr)
	}
	res = runRaftkv(t, f.dir, nil, "get", "app/cli", endpoints)
	if res.code != 1 || !strings.Contains(res.stderr, "auth_required") {
		t.Errorf("get without credentials: exit %d: %s", res.code, res.stderr)
	}
}

// TestREADMESecurityExample runs the README's Security example as written:
// the auth file made with raftkv auth hash, then every curl and CLI line
// against a cluster started with it, each printing what its comment says.
func TestREADMESecurityExample(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("the example uses curl, which is not installed")
	}
	// The first block makes auth.json and starts make run with it; the
	// test runs it up to the start and prints the file instead.
	var setup []string
	started := false
	for line := range strings.Lines(docBlock(t, "README.md", "raftkv auth hash")) {
		switch {
		case strings.HasPrefix(line, "make build"):
		case strings.Contains(line, "RAFTKV_AUTH_FILE=auth.json make run"):
			started = true
			setup = append(setup, "cat auth.json\n")
		default:
			setup = append(setup, line)
		}
	}
	if !started {
		t.Fatal("the README's Security example does not start make run with RAFTKV_AUTH_FILE=auth.json")
	}
	authFile := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(authFile, []byte(runDocScript(t, strings.Join(setup, ""))), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, 3, "--auth-file", authFile)
	mustDoAs(t, basicAuth("root", "root-pw"), http.MethodPut, c.members[0].url("e2e-probe"), "ok", http.StatusNoContent)

	var lines, want []string
	for line := range strings.Lines(docBlock(t, "README.md", "-u app:app-pw")) {
		cmd, comment, ok := strings.Cut(line, "# ")
		if !ok {
			t.Fatalf("README's Security example: %q has no comment saying what it prints", line)
		}
		for i, port := range []string{"12380", "22380", "32380"} {
			cmd = strings.ReplaceAll(cmd, "127.0.0.1:"+port, "127.0.0.1:"+strconv.Itoa(c.members[i].port))
		}
		lines = append(lines, cmd+"\n")
		want = append(want, strings.TrimSpace(comment))
	}
	got := strings.Split(strings.TrimSpace(runDocScript(t, strings.Join(lines, ""))), "\n")
	if !slices.Equal(got, want) {
		t.Errorf("the README's Security example printed\n%q\nwant (its comments)\n%q", got, want)
	}
}

// sseStream is an open watch stream read event by event.
type sseStream struct {
	lines  *bufio.Reader
	cancel context.CancelFunc
}

func openWatch(t *testing.T, authorization, url string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), leaderTimeout)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", authorization)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("watch %s: status %d", url, resp.StatusCode)
	}
	return &sseStream{lines: bufio.NewReader(resp.Body), cancel: cancel}
}

// next returns the next event block, keepalive comments skipped.
func (s *sseStream) next(t *testing.T) string {
	t.Helper()
	var block strings.Builder
	for {
		line, err := s.lines.ReadString('\n')
		if err != nil {
			t.Fatalf("watch stream: %v after %q", err, block.String())
		}
		switch {
		case strings.HasPrefix(line, ":"):
		case line == "\n" && block.Len() > 0:
			return block.String()
		case line != "\n":
			block.WriteString(line)
		}
	}
}
