// Package testcerts makes throwaway certificate authorities and certificates
// for TLS tests on loopback, with package pki, which `raftkv cert` uses.
package testcerts

import (
	"crypto/x509"
	"encoding/pem"
	"math/big"
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
	// CA and OtherCA are the authorities of CAFile and OtherCAFile, for
	// tests that issue more certificates.
	CA, OtherCA *pki.KeyPair
}

// lifetime outlasts any test.
const lifetime = 24 * time.Hour

// nodeHosts are the hosts node certificates are valid for.
func nodeHosts() []string { return []string{"127.0.0.1", "::1", "localhost"} }

// New writes a Set into a new directory of t's.
func New(t testing.TB) *Set {
	t.Helper()
	dir := t.TempDir()
	ca := must(t)(pki.NewCA("raftkv test CA", lifetime))
	other := must(t)(pki.NewCA("another test CA", lifetime))
	s := &Set{
		CAFile:      writeCert(t, dir, "ca.pem", ca),
		OtherCAFile: writeCert(t, dir, "other-ca.pem", other),
		CA:          ca,
		OtherCA:     other,
	}
	s.NodeCert, s.NodeKey = write(t, dir, "node", must(t)(ca.IssueNode(nodeHosts(), lifetime)))
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

// ReplaceNode issues a new node certificate from ca, for the same hosts,
// and writes it over NodeCert and NodeKey as `raftkv cert create-node
// --overwrite` does: each file removed and written again, key first. It
// returns the new certificate.
func (s *Set) ReplaceNode(t testing.TB, ca *pki.KeyPair) *x509.Certificate {
	t.Helper()
	p := must(t)(ca.IssueNode(nodeHosts(), lifetime))
	if err := p.Write(s.NodeCert, s.NodeKey, true); err != nil {
		t.Fatalf("testcerts: %v", err)
	}
	return p.Cert
}

// Issue writes a new certificate of ca into t's directory: a node
// certificate for hosts, or with no hosts a client certificate with common
// name "client". It returns the files.
func Issue(t testing.TB, ca *pki.KeyPair, hosts ...string) (certFile, keyFile string) {
	t.Helper()
	issue := func() (*pki.KeyPair, error) { return ca.IssueClient("client", lifetime) }
	if len(hosts) > 0 {
		issue = func() (*pki.KeyPair, error) { return ca.IssueNode(hosts, lifetime) }
	}
	return write(t, t.TempDir(), "issued", must(t)(issue()))
}

// SerialOf reads the serial number of the (first) certificate in file.
func SerialOf(t testing.TB, file string) *big.Int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("testcerts: %v", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("testcerts: %s holds no PEM", file)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("testcerts: %s: %v", file, err)
	}
	return cert.SerialNumber
}
