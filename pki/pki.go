// Package pki makes the certificates a raftkv cluster uses for TLS: a
// certificate authority, node certificates (valid for serving and, toward
// peers and the leader's client port, as client certificates) and client
// certificates. Keys are ECDSA P-256 and everything is Go's standard library,
// so certificates can be made on any machine that can build raftkv.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"strings"
	"time"
)

// Errors of the package, for errors.Is. Their texts reach the users of
// raftkv cert, so they name no package.
var (
	// ErrExists means a file to write is already there and overwriting was
	// not asked for.
	ErrExists = errors.New("file exists")
	// ErrNotCA means a certificate that should sign others is no CA.
	ErrNotCA = errors.New("not a CA certificate")
	// ErrInvalidHost means a host for a node certificate that is neither an
	// IP address nor a DNS name.
	ErrInvalidHost = errors.New("invalid host")
)

// backdate is how long before its creation a certificate becomes valid, so
// that a machine whose clock is a little behind the one that made it accepts
// it at once (CockroachDB and most CAs backdate likewise).
const backdate = time.Hour

// KeyPair is a certificate with its private key.
type KeyPair struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA makes a self-signed certificate authority named commonName, valid
// for lifetime.
func NewCA(commonName string, lifetime time.Duration) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	now := time.Now()
	tmpl, err := template(commonName, now.Add(-backdate), now.Add(lifetime))
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	// It signs leaf certificates only, never another CA.
	tmpl.MaxPathLenZero = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	return sign(tmpl, tmpl, key, key)
}

// LoadCA reads a CA certificate and its key (PEM) that NewCA or another tool
// made.
func LoadCA(certFile, keyFile string) (*KeyPair, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("load CA: %s holds a key that cannot sign", keyFile)
	}
	if !pair.Leaf.IsCA {
		return nil, fmt.Errorf("%w: %s", ErrNotCA, certFile)
	}
	return &KeyPair{Cert: pair.Leaf, Key: signer}, nil
}

// IssueNode makes a certificate for a node reachable at hosts (IP addresses
// or DNS names), signed by ca. It is valid for server authentication and
// for client authentication: a node presents it to its peers and, when it
// forwards a request, to the leader's client port.
func (ca *KeyPair) IssueNode(hosts []string, lifetime time.Duration) (*KeyPair, error) {
	if len(hosts) == 0 {
		return nil, fmt.Errorf("%w: a node certificate needs at least one host", ErrInvalidHost)
	}
	var ips []net.IP
	var names []string
	for _, h := range hosts {
		switch ip := net.ParseIP(h); {
		case ip != nil:
			ips = append(ips, ip)
		case h == "" || strings.ContainsAny(h, ":/ @"):
			return nil, fmt.Errorf("%w: %q: give an IP address or a DNS name, without scheme or port", ErrInvalidHost, h)
		default:
			names = append(names, h)
		}
	}
	return ca.issue("node", lifetime, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, func(c *x509.Certificate) {
		c.IPAddresses, c.DNSNames = ips, names
	})
}

// IssueClient makes a client certificate with common name name, signed by
// ca.
func (ca *KeyPair) IssueClient(name string, lifetime time.Duration) (*KeyPair, error) {
	return ca.issue(name, lifetime, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, func(*x509.Certificate) {})
}

// issue signs a leaf certificate. It never outlives the CA: it could not be
// verified past the CA's end anyway.
func (ca *KeyPair) issue(commonName string, lifetime time.Duration, usage []x509.ExtKeyUsage, set func(*x509.Certificate)) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	now := time.Now()
	notAfter := now.Add(lifetime)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl, err := template(commonName, now.Add(-backdate), notAfter)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = usage
	set(tmpl)
	return sign(tmpl, ca.Cert, key, ca.Key)
}

func template(commonName string, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	// RFC 5280 allows serials of up to 20 bytes; 128 random bits never
	// collide.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
	}, nil
}

func sign(tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, parentKey crypto.Signer) (*KeyPair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, fmt.Errorf("sign %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", tmpl.Subject.CommonName, err)
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// CertPEM is the certificate in PEM.
func (p *KeyPair) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Cert.Raw})
}

// KeyPEM is the private key in PEM (PKCS #8, which OpenSSL, curl and Go all
// read).
func (p *KeyPair) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(p.Key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Mode of the files Write creates: the certificate is public, the key is
// readable by its owner only.
const (
	CertFileMode fs.FileMode = 0o644
	KeyFileMode  fs.FileMode = 0o600
)

// Write writes the certificate to certFile and the key to keyFile. Unless
// overwrite is set, it refuses (ErrExists) when either file exists, before
// writing anything, so that a certificate is never separated from its key.
func (p *KeyPair) Write(certFile, keyFile string, overwrite bool) error {
	keyPEM, err := p.KeyPEM()
	if err != nil {
		return err
	}
	if !overwrite {
		for _, f := range []string{certFile, keyFile} {
			if _, err := os.Lstat(f); err == nil {
				return fmt.Errorf("%w: %s", ErrExists, f)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	// The key first: a certificate without its key is useless, a key
	// without its certificate is merely left over.
	if err := writeFile(keyFile, keyPEM, KeyFileMode, overwrite); err != nil {
		return err
	}
	return writeFile(certFile, p.CertPEM(), CertFileMode, overwrite)
}

// writeFile creates path with mode and data. An existing file is removed
// first when overwrite is set, so that the new file gets mode even where the
// old one was laxer (os.WriteFile keeps an existing file's mode).
func writeFile(path string, data []byte, mode fs.FileMode, overwrite bool) error {
	if overwrite {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("replace %s: %w", path, err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s", ErrExists, path)
	}
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path) // a partial key or certificate must not look usable
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
