package main

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/listener"
)

// runCert runs raftkv with args in-process and returns its exit code and
// what it printed, or its error.
func runCert(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := runCommand(t, args...)
	if err != nil {
		return exitStatus(err), err.Error()
	}
	return exitOK, out
}

func mustRunCert(t *testing.T, args ...string) {
	t.Helper()
	if code, out := runCert(t, args...); code != exitOK {
		t.Fatalf("raftkv %s: exit %d: %s", strings.Join(args, " "), code, out)
	}
}

// serveTLS serves https on loopback with the listener package's server
// configuration, as `raftkv serve` does, and answers with the common name
// of the client certificate it got.
func serveTLS(t *testing.T, files listener.TLSFiles) string {
	t.Helper()
	cfg, err := files.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := listener.New("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
		}),
		ErrorLog: log.New(io.Discard, "", 0), // refused handshakes are expected
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return "https://" + ln.Addr().String()
}

// TestCertCreateAndHandshake makes a CA, a node and a client certificate
// with the commands, loads them as `raftkv serve` and the CLI do, and
// shakes hands over loopback with client certificates required: the client
// certificate and the node certificate (which a node presents to its peers
// and to the leader's client port) are accepted, no certificate is refused,
// and the node certificate names 127.0.0.1 and localhost.
func TestCertCreateAndHandshake(t *testing.T) {
	certs := filepath.Join(t.TempDir(), "certs")
	mustRunCert(t, "cert", "create-ca", "--certs-dir", certs)
	mustRunCert(t, "cert", "create-node", "127.0.0.1", "localhost", "--certs-dir", certs)
	mustRunCert(t, "cert", "create-client", "alice", "--certs-dir", certs)
	in := func(name string) string { return filepath.Join(certs, name) }

	for _, key := range []string{"ca-key.pem", "node-key.pem", "client.alice-key.pem"} {
		st, err := os.Stat(in(key))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", key, st.Mode().Perm())
		}
	}
	if st, err := os.Stat(certs); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("certs dir: %v, want mode 0700", err)
	}

	node := listener.TLSFiles{CertFile: in("node.pem"), KeyFile: in("node-key.pem"), TrustedCAFile: in("ca.pem"), ClientCertAuth: true}
	if err := node.Check("--"); err != nil {
		t.Fatal(err)
	}
	url := serveTLS(t, node)
	for _, tc := range []struct {
		name       string
		files      listener.TLSFiles
		serverName string
		want       string // the common name the server saw; "" for refused
	}{
		{"client certificate", listener.TLSFiles{CertFile: in("client.alice.pem"), KeyFile: in("client.alice-key.pem"), TrustedCAFile: in("ca.pem")}, "", "alice"},
		{"node certificate as a client", node, "", "node"},
		{"localhost", node, "localhost", "node"},
		{"no client certificate", listener.TLSFiles{CertFile: in("client.alice.pem"), KeyFile: in("client.alice-key.pem"), TrustedCAFile: in("ca.pem")}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.files.ClientConfig()
			if err != nil {
				t.Fatal(err)
			}
			cfg.ServerName = tc.serverName
			if tc.want == "" {
				cfg.Certificates = nil
			}
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
			defer client.CloseIdleConnections()
			resp, err := client.Get(url)
			if tc.want == "" {
				if err == nil {
					resp.Body.Close()
					t.Fatal("handshake without a client certificate succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil || string(body) != tc.want {
				t.Fatalf("server saw %q (%v), want %q", body, err, tc.want)
			}
		})
	}

	// A client certificate is not one a node can serve with: a client
	// that verifies the server refuses it.
	clientAsServer := serveTLS(t, listener.TLSFiles{CertFile: in("client.alice.pem"), KeyFile: in("client.alice-key.pem")})
	cfg, err := listener.TLSFiles{CertFile: in("node.pem"), KeyFile: in("node-key.pem"), TrustedCAFile: in("ca.pem")}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	defer client.CloseIdleConnections()
	if resp, err := client.Get(clientAsServer); err == nil {
		resp.Body.Close()
		t.Fatal("a server with a client certificate was accepted")
	}
}

// TestCertRefusesToOverwrite: existing files stay as they are unless
// --overwrite is given, and then a replaced key is private again.
func TestCertRefusesToOverwrite(t *testing.T) {
	certs := filepath.Join(t.TempDir(), "certs")
	in := func(name string) string { return filepath.Join(certs, name) }
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(in(name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mustRunCert(t, "cert", "create-ca", "--certs-dir", certs)
	mustRunCert(t, "cert", "create-node", "--certs-dir", certs)
	ca, caKey, node, nodeKey := read("ca.pem"), read("ca-key.pem"), read("node.pem"), read("node-key.pem")

	for _, args := range [][]string{
		{"cert", "create-ca", "--certs-dir", certs},
		{"cert", "create-node", "10.0.0.1", "--certs-dir", certs},
	} {
		code, out := runCert(t, args...)
		if code != exitError || !strings.Contains(out, "exists") || !strings.Contains(out, "--overwrite") {
			t.Errorf("raftkv %s: exit %d, %q; want exit 1 saying the file exists and --overwrite replaces it", strings.Join(args, " "), code, out)
		}
	}
	if !bytes.Equal(ca, read("ca.pem")) || !bytes.Equal(caKey, read("ca-key.pem")) ||
		!bytes.Equal(node, read("node.pem")) || !bytes.Equal(nodeKey, read("node-key.pem")) {
		t.Fatal("a refused command changed the files")
	}

	if err := os.Chmod(in("node-key.pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRunCert(t, "cert", "create-node", "10.0.0.1", "--certs-dir", certs, "--overwrite")
	if bytes.Equal(node, read("node.pem")) || bytes.Equal(nodeKey, read("node-key.pem")) {
		t.Fatal("--overwrite kept the old node certificate")
	}
	if st, err := os.Stat(in("node-key.pem")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("replaced node key: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
}

// TestCertBadCommandLines: usage errors exit 2, a missing CA exits 1 and
// says how to make one; nothing is written.
func TestCertBadCommandLines(t *testing.T) {
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"create-client", "--certs-dir", certs}, exitUsage, "cert create-client takes NAME; got 0 argument(s)"},
		{[]string{"create-client", "../alice", "--certs-dir", certs}, exitUsage, "client name"},
		{[]string{"create-ca", "extra", "--certs-dir", certs}, exitUsage, "cert create-ca takes no arguments; got 1"},
		{[]string{"create-ca", "--lifetime", "0s", "--certs-dir", certs}, exitUsage, "--lifetime"},
		{[]string{"create-ca", "--lifetime", "soon", "--certs-dir", certs}, exitUsage, `--lifetime "soon": want a duration`},
		{[]string{"create-node", "--certs-dir", certs}, exitError, "create-ca"},
		{[]string{"create-client", "alice", "--certs-dir", certs}, exitError, "create-ca"},
	} {
		code, out := runCert(t, append([]string{"cert"}, tc.args...)...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("raftkv cert %s: exit %d, %q; want exit %d, %q", strings.Join(tc.args, " "), code, out, tc.code, tc.want)
		}
	}
	if _, err := os.Stat(certs); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused command created %s: %v", certs, err)
	}
	mustRunCert(t, "cert", "create-ca", "--certs-dir", certs)
	if code, out := runCert(t, "cert", "create-node", "127.0.0.1:12379", "--certs-dir", certs); code != exitUsage || !strings.Contains(out, "without scheme or port") {
		t.Errorf("create-node with a port: exit %d, %q; want exit 2", code, out)
	}
}
