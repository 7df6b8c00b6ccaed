package listener

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"slices"

	"go.etcd.io/etcd/client/pkg/v3/transport"
)

// TLSFiles names the PEM files of one TLS endpoint, as etcd's flags do: the
// certificate and key it serves (and presents when it dials others of its
// kind), the CA bundle it trusts, and whether clients must present a
// certificate that CA signed.
type TLSFiles struct {
	CertFile, KeyFile string
	TrustedCAFile     string
	ClientCertAuth    bool
	// AllowedCNs and AllowedHostnames, at most one of them set, narrow
	// whom the CA's signature admits, as etcd's --peer-cert-allowed-cn and
	// --peer-cert-allowed-hostname do: the certificate on the other end of
	// a connection, either way, must have one of these common names, or be
	// valid for one of these hostnames (or IP addresses). A CA that also
	// signs client certificates for people then does not make them peers.
	AllowedCNs       []string
	AllowedHostnames []string
}

// Enabled reports whether TLS is configured.
func (f TLSFiles) Enabled() bool { return f.CertFile != "" || f.KeyFile != "" }

// Check reports settings that cannot work, naming flags after prefix (e.g.
// "--peer-"), and loads every file so that a bad one fails at startup.
func (f TLSFiles) Check(prefix string) error {
	switch {
	case !f.Enabled() && (f.TrustedCAFile != "" || f.ClientCertAuth):
		return fmt.Errorf("%strusted-ca-file and %sclient-cert-auth need %scert-file and %skey-file", prefix, prefix, prefix, prefix)
	case (f.CertFile == "") != (f.KeyFile == ""):
		return fmt.Errorf("%scert-file and %skey-file go together", prefix, prefix)
	case f.ClientCertAuth && f.TrustedCAFile == "":
		return fmt.Errorf("%sclient-cert-auth needs %strusted-ca-file, the CA that signs client certificates", prefix, prefix)
	case len(f.AllowedCNs) > 0 && len(f.AllowedHostnames) > 0:
		return fmt.Errorf("%scert-allowed-cn and %scert-allowed-hostname exclude each other: choose one", prefix, prefix)
	case (len(f.AllowedCNs) > 0 || len(f.AllowedHostnames) > 0) && !f.ClientCertAuth:
		return fmt.Errorf("%scert-allowed-cn and %scert-allowed-hostname need %sclient-cert-auth: without client certificates there is nothing to check", prefix, prefix, prefix)
	}
	if !f.Enabled() {
		return nil
	}
	if _, err := f.ServerConfig(); err != nil {
		return fmt.Errorf("%scert-file, %skey-file: %w", prefix, prefix, err)
	}
	if _, err := f.ClientConfig(); err != nil {
		return fmt.Errorf("%strusted-ca-file: %w", prefix, err)
	}
	return nil
}

// ServerConfig is the configuration to serve with, nil when TLS is off. It
// holds the files as they are now; a server that should pick up rotated
// certificates serves a Reloader's ServerConfig instead.
func (f TLSFiles) ServerConfig() (*tls.Config, error) {
	if !f.Enabled() {
		return nil, nil
	}
	cert, err := loadKeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load certificate: %w", err)
	}
	var pool *x509.CertPool
	if f.ClientCertAuth {
		if pool, err = LoadCAPool(f.TrustedCAFile); err != nil {
			return nil, fmt.Errorf("trusted CA: %w", err)
		}
	}
	return f.serverConfig(cert, pool), nil
}

// serverConfig serves cert and, with ClientCertAuth, requires client
// certificates that a CA in pool signed.
func (f TLSFiles) serverConfig(cert tls.Certificate, pool *x509.CertPool) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if f.ClientCertAuth {
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	cfg.VerifyPeerCertificate = f.verifyAllowed()
	return cfg
}

// verifyAllowed checks the other end's verified certificate against
// AllowedCNs or AllowedHostnames; nil when neither is set.
func (f TLSFiles) verifyAllowed() func([][]byte, [][]*x509.Certificate) error {
	if len(f.AllowedCNs) == 0 && len(f.AllowedHostnames) == 0 {
		return nil
	}
	return func(_ [][]byte, chains [][]*x509.Certificate) error {
		if len(chains) == 0 || len(chains[0]) == 0 {
			return ErrCertNotAllowed
		}
		cert := chains[0][0]
		if slices.Contains(f.AllowedCNs, cert.Subject.CommonName) {
			return nil
		}
		for _, h := range f.AllowedHostnames {
			if cert.VerifyHostname(h) == nil {
				return nil
			}
		}
		return fmt.Errorf("%w: common name %q, hosts %v", ErrCertNotAllowed, cert.Subject.CommonName, append(cert.DNSNames, ipStrings(cert)...))
	}
}

func ipStrings(cert *x509.Certificate) []string {
	s := make([]string, len(cert.IPAddresses))
	for i, ip := range cert.IPAddresses {
		s[i] = ip.String()
	}
	return s
}

// ClientConfig is the configuration to dial others of this endpoint's kind
// with: trust the CA bundle (the system's when none is given) and present
// this endpoint's certificate, for servers that require one. nil when TLS is
// off. Like ServerConfig it holds the files as they are now (see
// Reloader.DialTLSContext).
func (f TLSFiles) ClientConfig() (*tls.Config, error) {
	if !f.Enabled() {
		return nil, nil
	}
	cert, err := loadKeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load certificate: %w", err)
	}
	var pool *x509.CertPool
	if f.TrustedCAFile != "" {
		if pool, err = LoadCAPool(f.TrustedCAFile); err != nil {
			return nil, fmt.Errorf("trusted CA: %w", err)
		}
	}
	return f.clientConfig(cert, pool), nil
}

// clientConfig presents cert and trusts the CAs in pool (the system's when
// pool is nil).
func (f TLSFiles) clientConfig(cert tls.Certificate, pool *x509.CertPool) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12,
		VerifyPeerCertificate: f.verifyAllowed()}
}

// Info is the same settings in the form etcd's rafthttp dials with
// (rafthttp builds its client configuration from it).
func (f TLSFiles) Info() transport.TLSInfo {
	return transport.TLSInfo{CertFile: f.CertFile, KeyFile: f.KeyFile, TrustedCAFile: f.TrustedCAFile,
		AllowedCNs: f.AllowedCNs, AllowedHostnames: f.AllowedHostnames}
}

// LoadCAPool reads a PEM bundle of CA certificates. A file without any is an
// error (ErrNoPEMCertificate), and so is one that ends inside a block
// (ErrIncompletePEM). The errors name the file but not the flag; callers add
// that.
func LoadCAPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return parseCAPool(file, data)
}

func parseCAPool(file string, data []byte) (*x509.CertPool, error) {
	if err := checkComplete(file, data); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s %w", file, ErrNoPEMCertificate)
	}
	return pool, nil
}

// loadKeyPair reads a certificate (chain) and its private key.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	return parseKeyPair(certFile, keyFile, certPEM, keyPEM)
}

func parseKeyPair(certFile, keyFile string, certPEM, keyPEM []byte) (tls.Certificate, error) {
	if err := checkComplete(certFile, certPEM); err != nil {
		return tls.Certificate{}, err
	}
	if err := checkComplete(keyFile, keyPEM); err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	if cert.Leaf == nil { // Go fills it in unless GODEBUG=x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return tls.Certificate{}, err
		}
	}
	return cert, nil
}

// checkComplete refuses PEM data whose last block has a beginning but no
// end. The PEM decoder skips such a block silently, so a chain or bundle
// caught halfway through being written would otherwise load as its first
// certificates only. Text after the last block (comments some tools add)
// is not refused.
func checkComplete(file string, data []byte) error {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
	}
	if bytes.Contains(data, []byte("-----BEGIN")) {
		return fmt.Errorf("%s %w", file, ErrIncompletePEM)
	}
	return nil
}
