//go:build unix

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/listener"
)

// readmeTLS is the README's TLS example, read from README.md, so that the
// tests run what a reader pastes and a change to the example that the
// tests do not follow fails them.
type readmeTLS struct {
	certs [][]string // args of each `./bin/raftkv cert ...` line
	serve string     // the loop's command for node $i, continuation lines joined
	curl  []string   // curl's args
	get   []string   // args of `./bin/raftkv get ...`
}

// readREADMETLS parses the first sh block of the README's TLS section.
// Every line must be one the tests know how to run.
func readREADMETLS(t *testing.T) readmeTLS {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n### TLS\n")
	if !ok {
		t.Fatal("README.md has no ### TLS section")
	}
	section, _, _ = strings.Cut(section, "\n### ")
	_, block, ok := strings.Cut(section, "```sh\n")
	if !ok {
		t.Fatal("README's TLS section has no sh block")
	}
	block, _, _ = strings.Cut(block, "```")

	var ex readmeTLS
	var loop []string
	inLoop, cleaned, killed := false, false, false
	for line := range strings.Lines(block) {
		line, _, _ = strings.Cut(line, " #")
		line = strings.TrimSpace(line)
		switch {
		case inLoop && line == "done":
			inLoop = false
			ex.serve = strings.Join(loop, " ")
		case inLoop:
			loop = append(loop, strings.TrimSpace(strings.TrimSuffix(line, "\\")))
		case line == "":
		case line == "for i in 1 2 3; do":
			inLoop = true
		case strings.HasPrefix(line, "make clean"):
			cleaned = true
		case strings.HasPrefix(line, "./bin/raftkv cert "):
			ex.certs = append(ex.certs, strings.Fields(line)[1:])
		case strings.HasPrefix(line, "curl "):
			ex.curl = strings.Fields(line)[1:]
		case strings.HasPrefix(line, "./bin/raftkv get "):
			ex.get = strings.Fields(line)[1:]
		case line == "kill %1 %2 %3":
			killed = true
		default:
			t.Fatalf("README's TLS example: the tests do not know how to run %q", line)
		}
	}
	if !cleaned || !killed || len(ex.certs) == 0 || ex.serve == "" || ex.curl == nil || ex.get == nil {
		t.Fatalf("README's TLS example lacks a step (make clean, cert, serve loop, curl, get, kill): %+v", ex)
	}
	return ex
}

// readmePorts stands for the README's ports (peers 12379, 22379, 32379,
// clients 12380, 22380, 32380), which the Procfile uses too, with free
// ones.
type readmePorts struct {
	peer, client [3]int
	r            *strings.Replacer
}

func newREADMEPorts(t *testing.T) readmePorts {
	t.Helper()
	free := freePorts(t, 6)
	var p readmePorts
	var pairs []string
	for i := range 3 {
		p.peer[i], p.client[i] = free[2*i], free[2*i+1]
		pairs = append(pairs, strconv.Itoa(i+1)+"2379", strconv.Itoa(p.peer[i]), strconv.Itoa(i+1)+"2380", strconv.Itoa(p.client[i]))
	}
	p.r = strings.NewReplacer(pairs...)
	return p
}

// args replaces the README's ports in args.
func (p readmePorts) args(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = p.r.Replace(a)
	}
	return out
}

func (p readmePorts) clientURL(scheme string, i int) string {
	return scheme + "://127.0.0.1:" + strconv.Itoa(p.client[i-1])
}

// serveArgs is the README loop's command for node id, without the shell's
// redirection and `&`, on ports p.
func (ex readmeTLS) serveArgs(t *testing.T, id int, p readmePorts) []string {
	t.Helper()
	cmd := strings.ReplaceAll(ex.serve, "${i}", strconv.Itoa(id))
	cmd = strings.ReplaceAll(cmd, "$i", strconv.Itoa(id))
	cmd, _, _ = strings.Cut(cmd, " > ")
	fields := strings.Fields(cmd)
	if fields[0] != "./bin/raftkv" {
		t.Fatalf("README's serve loop runs %q, not ./bin/raftkv", fields[0])
	}
	return p.args(fields[1:])
}

// procfileArgs are the Procfile's commands, which `make run` starts, in
// order, on ports p.
func procfileArgs(t *testing.T, p readmePorts) [][]string {
	t.Helper()
	procfile, err := os.ReadFile("../../Procfile")
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for line := range strings.Lines(string(procfile)) {
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[1] != "./bin/raftkv" {
			t.Fatalf("Procfile line %q does not run ./bin/raftkv", line)
		}
		out = append(out, p.args(fields[2:]))
	}
	if len(out) != 3 {
		t.Fatalf("Procfile starts %d nodes, want 3", len(out))
	}
	return out
}

// flagValue returns the value after flag in args.
func flagValue(t *testing.T, args []string, flag string) string {
	t.Helper()
	i := slices.Index(args, flag)
	if i < 0 || i+1 == len(args) {
		t.Fatalf("%v has no %s", args, flag)
	}
	return args[i+1]
}

// startThree starts three nodes in dir with args(i) for node i (from 1) and
// waits until ready holds. With fixed ports it tries once; otherwise it
// picks free ports, and tries others (after wiping the data dirs the
// failed start made) when one was taken before a node could bind it.
func startThree(t *testing.T, dir, name string, fixed *readmePorts, args func(i int, p readmePorts) []string, ready func(p readmePorts) error) ([]*proc, readmePorts) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		var p readmePorts
		if fixed != nil {
			p = *fixed
		} else {
			p = newREADMEPorts(t)
		}
		var procs []*proc
		for i := 1; i <= 3; i++ {
			procs = append(procs, startProc(t, fmt.Sprintf("%s%d-start%d", name, i, attempt), dir, nil, args(i, p)...))
		}
		err := eventually(leaderTimeout, func() error {
			for i, pr := range procs {
				if pr.Exited() {
					return fmt.Errorf("node %d exited: %s", i+1, pr.LastLine())
				}
			}
			return ready(p)
		})
		if err == nil {
			return procs, p
		}
		for _, pr := range procs {
			pr.Stop(t)
		}
		if fixed != nil || !strings.Contains(err.Error(), "address already in use") || attempt == startAttempts {
			t.Fatalf("start %s nodes: %v", name, err)
		}
		for i := 1; i <= 3; i++ {
			if err := os.RemoveAll(filepath.Join(dir, "raftkv-"+strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// makeCerts runs the example's `raftkv cert` lines in dir.
func (ex readmeTLS) makeCerts(t *testing.T, dir string) {
	t.Helper()
	for _, args := range ex.certs {
		if r := runRaftkv(t, dir, nil, args...); r.code != 0 {
			t.Fatalf("raftkv %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

// TestTLSREADME follows the README's TLS example as written, in a fresh
// directory standing for the repository's root: certificates made by
// `raftkv cert`, three nodes started by the loop, a write with curl and a
// client certificate, a read with the CLI, and the nodes stopped.
func TestTLSREADME(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	ex := readREADMETLS(t)
	dir := t.TempDir()
	// make clean build: the test binary stands for bin/raftkv.
	ex.makeCerts(t, dir)
	for _, key := range []string{"ca-key.pem", "node-key.pem"} {
		if st, err := os.Stat(filepath.Join(dir, "certs", key)); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("certs/%s: %v, want mode 0600", key, err)
		}
	}

	in := func(f string) string { return filepath.Join(dir, f) }
	admin := listener.TLSFiles{CertFile: in(flagValue(t, ex.get, "--cert")), KeyFile: in(flagValue(t, ex.get, "--key")), TrustedCAFile: in(flagValue(t, ex.get, "--cacert"))}
	tlsConfig, err := admin.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: httpClient.Timeout, Transport: &http.Transport{TLSClientConfig: tlsConfig, DisableKeepAlives: true}}
	// curl --retry waits for the election; the test waits for it instead,
	// so that curl's back-off does not count.
	ready := func(p readmePorts) error {
		resp, err := client.Get(p.clientURL("https", 1) + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("node 1 /readyz: %d", resp.StatusCode)
		}
		return nil
	}
	procs, ports := startThree(t, dir, "readme-tls-node", nil, func(i int, p readmePorts) []string { return ex.serveArgs(t, i, p) }, ready)

	curlArgs := ports.args(ex.curl)
	if curl, err := exec.LookPath("curl"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, curl, curlArgs...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("curl %s: %v\n%s", strings.Join(curlArgs, " "), err, out)
		}
	} else {
		t.Logf("no curl (%v): writing with Go's client and the same certificate", err)
		url := curlArgs[slices.IndexFunc(curlArgs, func(a string) bool { return strings.HasPrefix(a, "https://") })]
		req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(flagValue(t, curlArgs, "-d")))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("PUT %s: %d", url, resp.StatusCode)
		}
	}

	if r := runRaftkv(t, dir, nil, ports.args(ex.get)...); r.code != 0 || r.stdout != "v\n" {
		t.Fatalf("raftkv %s: exit %d, stdout %q, stderr %q", strings.Join(ex.get, " "), r.code, r.stdout, r.stderr)
	}

	// kill %1 %2 %3
	for i, p := range procs {
		p.Terminate(t)
		if code := p.ExitCode(); code != 0 {
			t.Errorf("node %d exited %d after SIGTERM: %s", i+1, code, p.LastLine())
		}
	}
	if _, err := os.Stat(in("raftkv-1")); errors.Is(err, os.ErrNotExist) {
		t.Error("node 1 did not keep its data in raftkv-1, where make clean looks")
	}
}
