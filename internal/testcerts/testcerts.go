// Package testcerts makes throwaway certificate authorities and certificates
// for TLS tests on loopback.
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Set is a CA with a node certificate and a client certificate it signed,
// and a second CA that signed nothing here, all as PEM files.
type Set struct {
	// CAFile is the CA that signed NodeCert and ClientCert.
	CAFile string
	// NodeCert and NodeKey are for 127.0.0.1 and localhost, valid both for
	// serving and as a client certificate, as a member needs for its peers.
	NodeCert, NodeKey string
	// ClientCert and ClientKey are a client-only certificate.
	ClientCert, ClientKey string
	// OtherCAFile is a CA that signed none of these: trusting only it must
	// fail every handshake.
	OtherCAFile string
}

// New writes a Set into a new directory of t's.
func New(t testing.TB) *Set {
	t.Helper()
	dir := t.TempDir()
	ca, caKey := newCA(t, "raftkv test CA")
	other, _ := newCA(t, "another test CA")
	s := &Set{
		CAFile:      writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Raw),
		OtherCAFile: writePEM(t, dir, "other-ca.pem", "CERTIFICATE", other.Raw),
	}
	s.NodeCert, s.NodeKey = issue(t, dir, "node", ca, caKey, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
	s.ClientCert, s.ClientKey = issue(t, dir, "client", ca, caKey, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	return s
}

func newCA(t testing.TB, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := newKey(t)
	tmpl := template(name)
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testcerts: create CA: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testcerts: parse CA: %v", err)
	}
	return cert, key
}

// issue writes a certificate for loopback signed by ca, and its key, and
// returns their paths.
func issue(t testing.TB, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usage []x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key := newKey(t)
	tmpl := template(name)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = usage
	tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	tmpl.DNSNames = []string{"localhost"}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatalf("testcerts: create %s certificate: %v", name, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("testcerts: marshal %s key: %v", name, err)
	}
	return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+"-key.pem", "EC PRIVATE KEY", keyDER)
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testcerts: generate key: %v", err)
	}
	return key
}

func template(name string) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62)) // crypto/rand does not fail on Linux
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
}

func writePEM(t testing.TB, dir, name, blockType string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatalf("testcerts: %v", err)
	}
	return path
}
