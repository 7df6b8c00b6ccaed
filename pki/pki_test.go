package pki_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/raftkv/raftkv/pki"
)

// TestIssuedCertificatesVerify checks each certificate against its CA for
// the uses raftkv needs of it: a node certificate serves its hosts and
// authenticates as a client (to its peers, and to the leader when it
// forwards a request); a client certificate only authenticates a client.
func TestIssuedCertificatesVerify(t *testing.T) {
	ca, err := pki.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	node, err := ca.IssueNode([]string{"127.0.0.1", "::1", "localhost", "node1.example.com"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.IssueClient("alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	verify := func(c *x509.Certificate, host string, usage x509.ExtKeyUsage) error {
		_, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{usage}})
		return err
	}
	for _, tc := range []struct {
		name  string
		cert  *x509.Certificate
		host  string
		usage x509.ExtKeyUsage
		ok    bool
	}{
		{"node serves 127.0.0.1", node.Cert, "127.0.0.1", x509.ExtKeyUsageServerAuth, true},
		{"node serves ::1", node.Cert, "::1", x509.ExtKeyUsageServerAuth, true},
		{"node serves localhost", node.Cert, "localhost", x509.ExtKeyUsageServerAuth, true},
		{"node serves a DNS name", node.Cert, "node1.example.com", x509.ExtKeyUsageServerAuth, true},
		{"node does not serve other hosts", node.Cert, "10.0.0.1", x509.ExtKeyUsageServerAuth, false},
		{"node is a client", node.Cert, "", x509.ExtKeyUsageClientAuth, true},
		{"client is a client", client.Cert, "", x509.ExtKeyUsageClientAuth, true},
		{"client cannot serve", client.Cert, "", x509.ExtKeyUsageServerAuth, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := verify(tc.cert, tc.host, tc.usage); (err == nil) != tc.ok {
				t.Fatalf("verify: %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if client.Cert.Subject.CommonName != "alice" {
		t.Errorf("client common name %q, want alice", client.Cert.Subject.CommonName)
	}
	if !ca.Cert.IsCA || ca.Cert.MaxPathLen != 0 || !ca.Cert.MaxPathLenZero {
		t.Errorf("CA: IsCA %v, MaxPathLen %d: want a CA that signs leaves only", ca.Cert.IsCA, ca.Cert.MaxPathLen)
	}
}

// TestLifetimeEndsWithTheCA: a certificate asked to outlive its CA ends with
// it, since it could not be verified after that anyway.
func TestLifetimeEndsWithTheCA(t *testing.T) {
	ca, err := pki.NewCA("short CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.IssueClient("bob", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Fatalf("client certificate ends %v, CA %v", c.Cert.NotAfter, ca.Cert.NotAfter)
	}
	if !c.Cert.NotBefore.Before(time.Now().Add(-30 * time.Minute)) {
		t.Fatalf("NotBefore %v is not backdated for clock skew", c.Cert.NotBefore)
	}
}

func TestInvalidHosts(t *testing.T) {
	ca, err := pki.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, hosts := range [][]string{nil, {""}, {"127.0.0.1:12379"}, {"https://node1"}, {"a b"}} {
		if _, err := ca.IssueNode(hosts, time.Hour); !errors.Is(err, pki.ErrInvalidHost) {
			t.Errorf("IssueNode(%q) = %v, want ErrInvalidHost", hosts, err)
		}
	}
}

// TestWriteAndLoad: files round-trip, keys are private to their owner, and
// an existing file is replaced only when asked.
func TestWriteAndLoad(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	ca, err := pki.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Write(certFile, keyFile, false); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != pki.KeyFileMode {
		t.Fatalf("key file: %v, mode %v; want %v", err, st.Mode().Perm(), pki.KeyFileMode)
	}
	loaded, err := pki.LoadCA(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Cert.Equal(ca.Cert) {
		t.Fatal("loaded CA differs from the one written")
	}

	other, err := pki.NewCA("other CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Write(certFile, filepath.Join(dir, "new-key.pem"), false); !errors.Is(err, pki.ErrExists) {
		t.Fatalf("writing over an existing certificate: %v, want ErrExists", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "new-key.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused write left its key behind: %v", err)
	}
	// A key file that was readable by others becomes private again when
	// replaced.
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := other.Write(certFile, keyFile, true); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != pki.KeyFileMode {
		t.Fatalf("replaced key file: %v, mode %v; want %v", err, st.Mode().Perm(), pki.KeyFileMode)
	}
	if got, err := os.ReadFile(certFile); err != nil || !bytes.Equal(got, other.CertPEM()) {
		t.Fatalf("certificate not replaced: %v", err)
	}

	leaf, err := ca.IssueClient("carol", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leafCert, leafKey := filepath.Join(dir, "leaf.pem"), filepath.Join(dir, "leaf-key.pem")
	if err := leaf.Write(leafCert, leafKey, false); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.LoadCA(leafCert, leafKey); !errors.Is(err, pki.ErrNotCA) {
		t.Fatalf("loading a leaf as CA: %v, want ErrNotCA", err)
	}
}
