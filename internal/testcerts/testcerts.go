// Package testcerts makes throwaway certificate authorities and certificates
// for TLS tests on loopback, with package pki, which `raftkv cert` uses.
package testcerts

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/raftkv/raftkv/pki"
)

// Set is a CA with a node certificate and a client certificate it signed,
// and a second CA that signed nothing here, all as PEM files.
type Set struct {
	// CAFile is the CA that signed NodeCert and ClientCert.
	CAFile string
	// NodeCert and NodeKey are for 127.0.0.1, ::1 and localhost, valid both
	// for serving and as a client certificate, as a member needs for its
	// peers.
	NodeCert, NodeKey string
	// ClientCert and ClientKey are a client-only certificate.
	ClientCert, ClientKey string
	// OtherCAFile is a CA that signed none of these: trusting only it must
	// fail every handshake.
	OtherCAFile string
}

// lifetime outlasts any test.
const lifetime = 24 * time.Hour

// New writes a Set into a new directory of t's.
func New(t testing.TB) *Set {
	t.Helper()
	dir := t.TempDir()
	ca := must(t)(pki.NewCA("raftkv test CA", lifetime))
	other := must(t)(pki.NewCA("another test CA", lifetime))
	s := &Set{
		CAFile:      writeCert(t, dir, "ca.pem", ca),
		OtherCAFile: writeCert(t, dir, "other-ca.pem", other),
	}
	s.NodeCert, s.NodeKey = write(t, dir, "node", must(t)(ca.IssueNode([]string{"127.0.0.1", "::1", "localhost"}, lifetime)))
	s.ClientCert, s.ClientKey = write(t, dir, "client", must(t)(ca.IssueClient("client", lifetime)))
	return s
}

func must(t testing.TB) func(*pki.KeyPair, error) *pki.KeyPair {
	return func(p *pki.KeyPair, err error) *pki.KeyPair {
		t.Helper()
		if err != nil {
			t.Fatalf("testcerts: %v", err)
		}
		return p
	}
}

// write writes name.pem and name-key.pem and returns their paths.
func write(t testing.TB, dir, name string, p *pki.KeyPair) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := p.Write(certFile, keyFile, false); err != nil {
		t.Fatalf("testcerts: %v", err)
	}
	return certFile, keyFile
}

// writeCert writes only the certificate: a CA's key is not needed after New.
func writeCert(t testing.TB, dir, name string, p *pki.KeyPair) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, p.CertPEM(), pki.CertFileMode); err != nil {
		t.Fatalf("testcerts: %v", err)
	}
	return path
}
