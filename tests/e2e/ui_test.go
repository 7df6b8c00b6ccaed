//go:build unix

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/raftkv/raftkv/internal/testcerts"
)

// The dashboard in a real browser: headless Chromium (Debian's chromium
// package, which .ci/run installs) driven over the DevTools protocol. Each
// step leaves a screenshot in .reports/ui/ (RAFTKV_TEST_ARTIFACTS names
// another directory), which git ignores.

const browserTimeout = 30 * time.Second

// browser is one headless Chromium with one tab.
type browser struct {
	t      *testing.T
	ctx    context.Context
	shots  string
	step   int
	mu     sync.Mutex
	errors []string // console errors and uncaught exceptions
}

func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium on this machine: install Debian's chromium package (.ci/run does) to run the dashboard's browser tests")
	return ""
}

// startBrowser starts Chromium, stopped when the test ends.
func startBrowser(t *testing.T, flags ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a browser")
	}
	// Not t.TempDir, whose removal fails the test when a helper process of
	// Chromium still writes in it as the browser ends.
	profile, err := os.MkdirTemp("", "raftkv-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(profile) })
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
		// The machine has no network: nothing but the page may be fetched.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	opts = append(opts, flags...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	// Cancelling the allocator ends the browser and waits for it.
	t.Cleanup(func() { cancelTab(); cancelAlloc() })

	dir := os.Getenv("RAFTKV_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", ".reports")
	}
	b := &browser{t: t, ctx: ctx, shots: filepath.Join(dir, "ui", t.Name())}
	if err := os.MkdirAll(b.shots, 0o755); err != nil {
		t.Fatal(err)
	}
	// Listen starts the browser (with no timeout: one would end it).
	err = chromedp.Listen(ctx, func(ev any) {
		var problem string
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				problem = "console." + string(ev.Type) + ": " + strings.Join(args, " ")
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			problem = fmt.Sprintf("uncaught: %s at %s:%d", d.Text, d.URL, d.LineNumber)
			if d.Exception != nil {
				problem += ": " + d.Exception.Description
			}
		case *cdplog.EventEntryAdded:
			// An error answer of the API is logged by the network layer
			// ("Failed to load resource"): the page expects those (a 412,
			// a member that is down). Anything else, a refused script or
			// style (the CSP) among them, is a defect.
			if ev.Entry.Level == cdplog.EntryLevelError && ev.Entry.Source != cdplog.EntrySourceNetwork {
				problem = fmt.Sprintf("log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
			}
		}
		if problem != "" {
			b.mu.Lock()
			b.errors = append(b.errors, problem)
			b.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return b
}

// run performs actions, failing the test (with a screenshot) if they do not
// complete within browserTimeout.
func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.screenshot("failed-" + what)
		b.t.Fatalf("%s: %v%s", what, err, b.consoleReport())
	}
}

// waitFor polls a JavaScript expression until it is true.
// A poll that was running in a page the browser left (sign-out reloads
// it) fails with one of these; it is polled again in the new page.
var pageLeft = []string{"Cannot find context with specified id", "Execution context was destroyed", "Inspected target navigated or closed"}

func (b *browser) waitFor(what, expr string) {
	b.t.Helper()
	b.run("wait for "+what, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			_, err := chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond),
				chromedp.WithPollingTimeout(browserTimeout))(ctx, t)
			if err == nil || !slices.ContainsFunc(pageLeft, func(s string) bool { return strings.Contains(err.Error(), s) }) {
				return err
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
			case <-tick.C:
			}
		}
	}))
}

// clickRow clicks a table row through the page's own DOM: the key list is
// drawn again when a listing comes back, so a node the protocol looked up a
// moment before may be gone by the time its click is sent.
func (b *browser) clickRow(what, sel string) {
	b.t.Helper()
	b.waitFor(what, fmt.Sprintf(`((r) => { if (r) r.click(); return r !== null; })(document.querySelector(%s))`, js(sel)))
}

// screenshot saves the page as the next step's PNG.
func (b *browser) screenshot(name string) {
	b.step++
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	file := filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.step, strings.NewReplacer(" ", "-", "/", "-").Replace(name)))
	if err := os.WriteFile(file, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
	}
}

func (b *browser) consoleReport() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errors) == 0 {
		return ""
	}
	return "\nconsole:\n  " + strings.Join(b.errors, "\n  ")
}

// checkConsole fails the test if the page logged an error or shows one of
// its own.
func (b *browser) checkConsole() {
	b.t.Helper()
	if report := b.consoleReport(); report != "" {
		b.t.Errorf("the page logged errors:%s", report)
	}
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	shown, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#message').textContent`))
	if err != nil || strings.Contains(shown, "Internal error") {
		b.t.Errorf("the page's message area: %q (%v)", shown, err)
	}
}

// js quotes s as a JavaScript string.
func js(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// clusterLeader asks m for the member list and returns its leader, 0 when
// there is none.
func clusterLeader(m *member) int {
	r, err := do(http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(m.port)+"/v1/members", "")
	if err != nil || r.status != http.StatusOK {
		return 0
	}
	var list struct{ Leader int }
	if json.Unmarshal([]byte(r.body), &list) != nil {
		return 0
	}
	return list.Leader
}

// TestDashboard drives the dashboard of a three-member cluster: it shows
// the members and the leader, a write made with curl reaches its key
// browser and watch pane, a compare-and-swap through it succeeds and a
// stale one shows the conflict, its watch resumes without a gap or a
// repeat after the node serving it is killed and restarted, and after a
// kill -9 of the leader it shows the new one.
func TestDashboard(t *testing.T) {
	b := startBrowser(t)
	c := startCluster(t, 3)
	var leader int
	if err := eventually(leaderTimeout, func() error {
		if leader = clusterLeader(c.members[0]); leader == 0 {
			return fmt.Errorf("no leader")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The page is served by a follower, which outlives the leader.
	page := c.members[leader%3]
	base := "http://127.0.0.1:" + strconv.Itoa(page.port)

	b.run("open the dashboard", chromedp.Navigate(base+"/ui/"))
	b.waitFor("three members and the leader", fmt.Sprintf(`(() => {
		const rows = document.querySelectorAll('#members tbody tr');
		const lead = document.querySelector('#members tbody tr[data-role="leader"]');
		return rows.length === 3 && lead !== null && lead.dataset.memberId === '%d' &&
			document.querySelector('#leader').textContent.trim() === '%d' &&
			document.querySelector('#node-id').textContent.trim() === '%d';
	})()`, leader, leader, page.id))
	b.screenshot("members")

	// A watch on the prefix, then a write made with curl: it shows in the
	// watch pane and in the key browser.
	b.run("watch ui-test/", chromedp.SetValue(chromedp.CSS("#watch-prefix"), "ui-test/"),
		chromedp.Click(chromedp.CSS("#watch-btn")))
	b.waitFor("the watch to be live", `document.querySelector('#watch-state').textContent.includes('live')`)
	mustDo(t, http.MethodPut, base+"/v1/kv/ui-test/greeting", "hello", http.StatusOK)
	b.waitFor("the write in the watch pane",
		`[...document.querySelectorAll('#watch-events li')].some(li => li.dataset.key === 'ui-test/greeting' && li.textContent.includes('hello'))`)
	b.run("list ui-test/", chromedp.SetValue(chromedp.CSS("#prefix"), "ui-test/"),
		chromedp.Click(chromedp.CSS("#list-btn")))
	row := `#keys tbody tr[data-key="ui-test/greeting"]`
	b.waitFor("the key in the key browser", fmt.Sprintf(`document.querySelector(%s) !== null`, js(row)))
	b.screenshot("write seen")

	// A compare-and-swap edit through the page.
	b.clickRow("open the key", row)
	b.waitFor("the key's value", `document.querySelector('#kv-value').value === 'hello'`)
	b.run("edit and save", chromedp.SetValue(chromedp.CSS("#kv-value"), "hello from the page"),
		chromedp.Click(chromedp.CSS("#save-btn")))
	b.waitFor("the save to succeed", savedAndShown)
	mustGetValue(t, base+"/v1/kv/ui-test/greeting", "hello from the page")
	b.screenshot("cas saved")

	// The key changes behind the page's back: its next save is stale and
	// shows the conflict with the current value, and changes nothing.
	mustDo(t, http.MethodPut, base+"/v1/kv/ui-test/greeting", "changed with curl", http.StatusOK)
	b.run("save a stale edit", chromedp.SetValue(chromedp.CSS("#kv-value"), "stale edit"),
		chromedp.Click(chromedp.CSS("#save-btn")))
	b.waitFor("the conflict", `document.querySelector('#kv-message').classList.contains('conflict') &&
		document.querySelector('#kv-message').textContent.includes('412') &&
		document.querySelector('#kv-current').textContent.includes('changed with curl')`)
	mustGetValue(t, base+"/v1/kv/ui-test/greeting", "changed with curl")
	b.screenshot("cas conflict")

	// kill -9 of the node serving the page: the watch breaks, a write made
	// meanwhile through the leader is missed live, and once the node is
	// back the watch resumes after the last revision it showed: the missed
	// write appears, once, and nothing shown before appears again.
	page.proc.Kill(t)
	b.waitFor("the watch to notice", `!document.querySelector('#watch-state').textContent.includes('live')`)
	leaderBase := "http://127.0.0.1:" + strconv.Itoa(c.members[leader-1].port)
	mustDo(t, http.MethodPut, leaderBase+"/v1/kv/ui-test/while-away", "missed live", http.StatusOK)
	c.restart(page)
	b.waitFor("the missed write, once, after the watch resumed", `(() => {
		const items = [...document.querySelectorAll('#watch-events li')];
		const count = (key) => items.filter(li => li.dataset.key === key).length;
		return document.querySelector('#watch-state').textContent.includes('live') &&
			count('ui-test/while-away') === 1 && count('ui-test/greeting') === 3 &&
			new Set(items.map(li => li.dataset.revision)).size === items.length;
	})()`)
	b.screenshot("watch resumed")

	// kill -9 of the leader: the page shows the new one, and the old one
	// as unreachable.
	c.members[leader-1].proc.Kill(t)
	var next int
	if err := eventually(leaderTimeout, func() error {
		if next = clusterLeader(page); next == 0 || next == leader {
			return fmt.Errorf("leader %d", next)
		}
		return nil
	}); err != nil {
		t.Fatalf("no new leader after killing %d: %v", leader, err)
	}
	b.waitFor("the new leader", fmt.Sprintf(`(() => {
		const lead = document.querySelector('#members tbody tr[data-role="leader"]');
		const old = document.querySelector('#members tbody tr[data-member-id="%d"]');
		return lead !== null && lead.dataset.memberId === '%d' && old !== null && old.dataset.role === 'unreachable' &&
			document.querySelector('#leader').textContent.trim() === '%d';
	})()`, leader, next, next))
	b.screenshot("new leader")
	b.checkConsole()
}

// savedAndShown is true once the page saved the open key and shows it at
// the revision of that save.
const savedAndShown = `(() => {
	const msg = document.querySelector('#kv-message');
	const saved = /Saved at revision (\d+)/.exec(msg.textContent);
	return msg.classList.contains('ok') && saved !== null &&
		document.querySelector('#kv-mod-revision').textContent.trim() === saved[1];
})()`

// mustGetValue checks a key's value through the API.
func mustGetValue(t *testing.T, url, want string) {
	t.Helper()
	r, err := do(http.MethodGet, url, "")
	if err != nil || r.status != http.StatusOK || r.body != want {
		t.Fatalf("GET %s = %v %v, want 200 %q", url, r, err, want)
	}
}

// TestDashboardAccessControlOverTLS: over https, with access control on,
// the page asks for credentials, refuses wrong ones, and shows a reader no
// edit buttons while a writer of the key gets them and can save.
func TestDashboardAccessControlOverTLS(t *testing.T) {
	b := startBrowser(t, chromedp.Flag("ignore-certificate-errors", true)) // the test CA is not the browser's
	certs := testcerts.New(t)
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(certs.CAFile)
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("read %s: %v", certs.CAFile, err)
	}
	client := &http.Client{Timeout: httpClient.Timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
	f := &authFixture{dir: t.TempDir(), hashes: map[string]string{}}
	f.authFile = filepath.Join(f.dir, "auth.json")
	f.hashes["root"] = hashWithCLI(t, f.dir, rootPassword)
	f.hashes["reader"] = hashWithCLI(t, f.dir, readerPassword)
	f.hashes["app"] = hashWithCLI(t, f.dir, appPassword)
	f.hashes["token:ci"] = f.hashes["app"] // a well-formed hash; the test signs in with no token
	f.writeAuthFile(t, f.users())

	call := func(creds, method, url, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", creds)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var base string
	for attempt := 1; ; attempt++ {
		ports := freePorts(t, 2)
		base = "https://127.0.0.1:" + strconv.Itoa(ports[1])
		p := startProc(t, "ui-tls", f.dir, nil, "serve", "--id", "1", "--cluster", "http://127.0.0.1:"+strconv.Itoa(ports[0]),
			"--port", strconv.Itoa(ports[1]), "--data-dir", filepath.Join(t.TempDir(), "data"),
			"--cert-file", certs.NodeCert, "--key-file", certs.NodeKey, "--auth-file", f.authFile)
		err := eventually(leaderTimeout, func() error {
			if p.Exited() {
				return fmt.Errorf("exited: %s", p.LastLine())
			}
			if status, body := call(basicAuth("root", rootPassword), http.MethodPut, base+"/v1/kv/app/k", "app-value"); status != http.StatusOK {
				return fmt.Errorf("PUT app/k: %d %s", status, body)
			}
			return nil
		})
		if err == nil {
			break
		}
		p.Stop(t)
		if !strings.Contains(p.Log(), "address already in use") || attempt == startAttempts {
			t.Fatal(err)
		}
	}

	visible := func(sel string) string {
		return fmt.Sprintf(`((e) => e !== null && e.offsetParent !== null)(document.querySelector(%s))`, js(sel))
	}
	signIn := func(user, password string) {
		t.Helper()
		b.waitFor("the sign-in form", visible("#login"))
		b.run("sign in as "+user, chromedp.SetValue(chromedp.CSS("#login-user"), user),
			chromedp.SetValue(chromedp.CSS("#login-password"), password), chromedp.Click(chromedp.CSS("#login-btn")))
	}
	openKey := func(key, value string) {
		t.Helper()
		row := fmt.Sprintf(`#keys tbody tr[data-key=%s]`, js(key))
		b.run("list app/", chromedp.SetValue(chromedp.CSS("#prefix"), "app/"), chromedp.Click(chromedp.CSS("#list-btn")))
		b.waitFor("the key in the key browser", fmt.Sprintf(`document.querySelector(%s) !== null`, js(row)))
		b.clickRow("open "+key, row)
		b.waitFor("the key's value", fmt.Sprintf(`document.querySelector('#kv-value').value === %s`, js(value)))
	}

	b.run("open the dashboard", chromedp.Navigate(base+"/ui/"))
	signIn("app", "not-the-password")
	b.waitFor("the refusal", `document.querySelector('#login-message').textContent.trim() !== ''`)
	b.screenshot("wrong password")

	// A reader sees the key but no way to change it.
	signIn("reader", readerPassword)
	b.waitFor("the reader signed in", `document.querySelector('#whoami').textContent.includes('reader')`)
	openKey("app/k", "app-value")
	b.waitFor("no edit buttons for a reader", fmt.Sprintf(`!%s && !%s && !%s`, visible("#save-btn"), visible("#delete-btn"), visible("#create-btn")))
	b.screenshot("reader")

	// A writer of app/ gets them, and its save goes through.
	b.run("sign out", chromedp.Click(chromedp.CSS("#logout-btn")))
	b.waitFor("the reader's data gone", `document.querySelectorAll('#keys tbody tr, #members tbody tr').length === 0 &&
		document.querySelector('#kv-value').value === ''`)
	signIn("app", appPassword)
	b.waitFor("app signed in", `document.querySelector('#whoami').textContent.includes('app')`)
	openKey("app/k", "app-value")
	b.waitFor("the edit buttons", visible("#save-btn")+" && "+visible("#delete-btn"))
	b.run("save as app", chromedp.SetValue(chromedp.CSS("#kv-value"), "saved by app"), chromedp.Click(chromedp.CSS("#save-btn")))
	b.waitFor("the save to succeed", savedAndShown)
	if status, body := call(basicAuth("root", rootPassword), http.MethodGet, base+"/v1/kv/app/k", ""); status != http.StatusOK || body != "saved by app" {
		t.Fatalf("app/k = %d %q after the page saved it, want \"saved by app\"", status, body)
	}
	b.screenshot("writer")
	b.checkConsole()
}
