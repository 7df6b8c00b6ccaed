//go:build unix

package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/internal/testcerts"
	"github.com/raftkv/raftkv/listener"
)

// TestTLSProcesses runs three `raftkv serve` processes with TLS on the peer
// and client ports, client certificates required on both, as an operator
// would start them, and writes and reads over https on different nodes.
// Then it rotates the node certificate under them: every port presents the
// new one at its next handshake, with no restart, the cluster goes on
// serving, and a half-written certificate file is logged and ignored.
func TestTLSProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	certs := testcerts.New(t)
	tlsConfig, err := listener.TLSFiles{CertFile: certs.ClientCert, KeyFile: certs.ClientKey, TrustedCAFile: certs.CAFile}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: httpClient.Timeout, Transport: &http.Transport{TLSClientConfig: tlsConfig, DisableKeepAlives: true}}
	tlsFlags := []string{
		"--cert-file", certs.NodeCert, "--key-file", certs.NodeKey, "--trusted-ca-file", certs.CAFile, "--client-cert-auth",
		"--peer-cert-file", certs.NodeCert, "--peer-key-file", certs.NodeKey, "--peer-trusted-ca-file", certs.CAFile, "--peer-client-cert-auth",
	}
	call := func(method, url, body string) (int, string, error) {
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}

	var clientURLs, peers []string
	var procs []*proc
	for attempt := 1; ; attempt++ {
		ports := freePorts(t, 6)
		peers = make([]string, 3)
		clientURLs = make([]string, 3)
		for i := range 3 {
			peers[i] = "https://127.0.0.1:" + strconv.Itoa(ports[2*i])
			clientURLs[i] = "https://127.0.0.1:" + strconv.Itoa(ports[2*i+1])
		}
		dir := t.TempDir()
		procs = nil
		for i := range 3 {
			args := append([]string{"serve", "--id", strconv.Itoa(i + 1), "--cluster", strings.Join(peers, ","),
				"--port", strconv.Itoa(ports[2*i+1]), "--data-dir", filepath.Join(dir, "data"+strconv.Itoa(i+1))}, tlsFlags...)
			procs = append(procs, startProc(t, "tls-node"+strconv.Itoa(i+1), dir, nil, args...))
		}
		err := eventually(leaderTimeout, func() error {
			for i, p := range procs {
				if p.Exited() {
					return fmt.Errorf("node %d exited: %s", i+1, p.LastLine())
				}
			}
			status, body, err := call(http.MethodPut, clientURLs[0]+"/tls-probe", "ok")
			if err != nil || status != http.StatusNoContent {
				return fmt.Errorf("PUT over https: %d %s %v", status, body, err)
			}
			return nil
		})
		if err == nil {
			break
		}
		for _, p := range procs {
			p.Stop(t)
		}
		// A port taken between choosing it and binding it: try new ones.
		if !strings.Contains(err.Error(), "address already in use") || attempt == startAttempts {
			t.Fatalf("start a TLS cluster: %v", err)
		}
	}

	if status, body, err := call(http.MethodPut, clientURLs[1]+"/greeting", "hello over tls"); err != nil || status != http.StatusNoContent {
		t.Fatalf("PUT on node 2: %d %s %v", status, body, err)
	}
	if status, body, err := call(http.MethodGet, clientURLs[2]+"/greeting", ""); err != nil || status != http.StatusOK || body != "hello over tls" {
		t.Fatalf("GET on node 3: %d %q %v", status, body, err)
	}
	// Member client URLs are published as https, and a follower forwards
	// the members request to the leader over TLS. Each member publishes its
	// client URL in the background once it runs, so all three may take a
	// moment to appear.
	for _, u := range clientURLs {
		err := eventually(leaderTimeout, func() error {
			status, body, err := call(http.MethodGet, u+"/v1/members", "")
			if err != nil || status != http.StatusOK || strings.Count(body, `"https://`) != 6 {
				return fmt.Errorf("GET %s/v1/members: %d %s %v", u, status, body, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The CLI, with etcdctl's TLS flags: a read, and the status of every
	// member, which it asks at their advertised https client URLs.
	cliTLS := []string{"--endpoints", clientURLs[2], "--cacert", certs.CAFile, "--cert", certs.ClientCert, "--key", certs.ClientKey}
	if r := runRaftkv(t, t.TempDir(), nil, append([]string{"get", "greeting"}, cliTLS...)...); r.code != 0 || r.stdout != "hello over tls\n" {
		t.Fatalf("raftkv get over TLS: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := runRaftkv(t, t.TempDir(), nil, append([]string{"status"}, cliTLS...)...); r.code != 0 || strings.Count(r.stdout, "leader") == 0 {
		t.Fatalf("raftkv status over TLS: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := runRaftkv(t, t.TempDir(), nil, "get", "greeting", "--endpoints", clientURLs[2], "--cacert", certs.CAFile); r.code != 5 {
		t.Fatalf("raftkv get without a client certificate: exit %d, stdout %q, stderr %q; want 5", r.code, r.stdout, r.stderr)
	}
	// Plain HTTP to a TLS port is refused by the server's TLS layer.
	if r, err := do(http.MethodGet, strings.Replace(clientURLs[0], "https", "http", 1)+"/greeting", ""); err != nil || r.status != http.StatusBadRequest {
		t.Fatalf("plain HTTP to the TLS client port: %v %v, want 400", r, err)
	}

	checkRotation(t, certs, tlsConfig, call, clientURLs, peers, procs)
}

// checkRotation replaces the node certificate files of the TLS cluster of
// TestTLSProcesses, then spoils them.
func checkRotation(t *testing.T, certs *testcerts.Set, tlsConfig *tls.Config, call func(method, url, body string) (int, string, error), clientURLs, peers []string, procs []*proc) {
	expectSerial := func(when string, want *big.Int) {
		t.Helper()
		for i := range procs {
			for _, u := range []string{clientURLs[i], peers[i]} {
				// Each handshake asks for the files again; more than one
				// shows that a bad file is not reported at every one.
				for range 3 {
					got, err := presentedSerial(tlsConfig, u)
					if err != nil || got.Cmp(want) != 0 {
						t.Fatalf("%s: %s presented serial %X (%v), want %X", when, u, got, err, want)
					}
				}
			}
		}
	}
	// serving writes on node 2, reads on node 3 and has every node answer
	// a members request (the followers forward it to the leader), retrying
	// through an election on a loaded machine.
	serving := func(when, value string) {
		t.Helper()
		err := eventually(leaderTimeout, func() error {
			if status, body, err := call(http.MethodPut, clientURLs[1]+"/rotation", value); err != nil || status != http.StatusNoContent {
				return fmt.Errorf("PUT on node 2: %d %s %v", status, body, err)
			}
			if status, body, err := call(http.MethodGet, clientURLs[2]+"/rotation", ""); err != nil || status != http.StatusOK || body != value {
				return fmt.Errorf("GET on node 3: %d %q %v", status, body, err)
			}
			for _, u := range clientURLs {
				if status, body, err := call(http.MethodGet, u+"/v1/members", ""); err != nil || status != http.StatusOK {
					return fmt.Errorf("GET %s/v1/members: %d %s %v", u, status, body, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
	}

	renewed := certs.ReplaceNode(t, certs.CA).SerialNumber
	expectSerial("after the rotation", renewed)
	serving("after the rotation", "rotated")

	if err := os.WriteFile(certs.NodeCert, []byte("-----BEGIN CERTIFICATE-----\nMIIB"), 0o644); err != nil {
		t.Fatal(err)
	}
	expectSerial("with a half-written certificate file", renewed)
	serving("with a half-written certificate file", "kept")
	// Once on the client port and once on the peer port, however many
	// handshakes there were.
	const kept = "cannot reload the TLS certificate; keeping the previous one"
	for i, p := range procs {
		if n := strings.Count(p.Log(), kept); n != 2 {
			t.Errorf("node %d logged %q %d times, want 2", i+1, kept, n)
		}
	}
	expectSerial("after a fix", certs.ReplaceNode(t, certs.CA).SerialNumber)
}

// presentedSerial is the serial number of the certificate the server at
// rawURL presents.
func presentedSerial(tlsConfig *tls.Config, rawURL string) (*big.Int, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	conn, err := tls.Dial("tcp", u.Host, tlsConfig)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber, nil
}
