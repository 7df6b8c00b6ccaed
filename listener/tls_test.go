package listener_test

import (
	"crypto/tls"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/internal/testcerts"
	"github.com/raftkv/raftkv/listener"
)

// TestTLSFilesCheck: settings that cannot work are refused with the flags
// they came from named, before a node starts.
func TestTLSFilesCheck(t *testing.T) {
	certs := testcerts.New(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	// A bundle caught while its second certificate was being written.
	cutShort := filepath.Join(t.TempDir(), "cut-short.pem")
	other := certs.OtherCA.CertPEM()
	if err := os.WriteFile(cutShort, append(certs.CA.CertPEM(), other[:len(other)/2]...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		files listener.TLSFiles
		want  string // "" for accepted
	}{
		{"off", listener.TLSFiles{}, ""},
		{"server only", listener.TLSFiles{CertFile: certs.NodeCert, KeyFile: certs.NodeKey}, ""},
		{"client certs required", listener.TLSFiles{CertFile: certs.NodeCert, KeyFile: certs.NodeKey, TrustedCAFile: certs.CAFile, ClientCertAuth: true}, ""},
		{"cert without key", listener.TLSFiles{CertFile: certs.NodeCert}, "--peer-cert-file and --peer-key-file go together"},
		{"CA without cert", listener.TLSFiles{TrustedCAFile: certs.CAFile}, "need --peer-cert-file"},
		{"client auth without CA", listener.TLSFiles{CertFile: certs.NodeCert, KeyFile: certs.NodeKey, ClientCertAuth: true}, "--peer-client-cert-auth needs --peer-trusted-ca-file"},
		{"missing cert", listener.TLSFiles{CertFile: missing, KeyFile: certs.NodeKey}, "no such file"},
		{"key of another cert", listener.TLSFiles{CertFile: certs.NodeCert, KeyFile: certs.ClientKey}, "private key does not match"},
		{"missing CA", listener.TLSFiles{CertFile: certs.NodeCert, KeyFile: certs.NodeKey, TrustedCAFile: missing}, "--peer-trusted-ca-file"},
		{"CA for dialing that is no PEM", listener.TLSFiles{CertFile: certs.NodeCert, KeyFile: certs.NodeKey, TrustedCAFile: certs.NodeKey}, "holds no PEM certificate"},
		{"CA that is no PEM", listener.TLSFiles{CertFile: certs.NodeCert, KeyFile: certs.NodeKey, TrustedCAFile: certs.NodeKey, ClientCertAuth: true}, "no PEM certificate"},
		{"CA bundle cut short", listener.TLSFiles{CertFile: certs.NodeCert, KeyFile: certs.NodeKey, TrustedCAFile: cutShort, ClientCertAuth: true}, "incomplete PEM block"},
		{"allowed CN", listener.TLSFiles{CertFile: certs.NodeCert, KeyFile: certs.NodeKey, TrustedCAFile: certs.CAFile, ClientCertAuth: true, AllowedCNs: []string{"node"}}, ""},
		{"allowed CN without client certs", listener.TLSFiles{CertFile: certs.NodeCert, KeyFile: certs.NodeKey, TrustedCAFile: certs.CAFile, AllowedCNs: []string{"node"}}, "need --peer-client-cert-auth"},
		{"allowed CN and hostname", listener.TLSFiles{CertFile: certs.NodeCert, KeyFile: certs.NodeKey, TrustedCAFile: certs.CAFile, ClientCertAuth: true, AllowedCNs: []string{"node"}, AllowedHostnames: []string{"localhost"}}, "exclude each other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.files.Check("--peer-")
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestAllowedHostname: with AllowedHostnames a handshake succeeds only with
// a certificate valid for one of them, checked on both ends.
func TestAllowedHostname(t *testing.T) {
	certs := testcerts.New(t)
	for _, tc := range []struct {
		name              string
		allowed           string
		certFile, keyFile string
		ok                bool
	}{
		{"node certificate for localhost", "localhost", certs.NodeCert, certs.NodeKey, true},
		{"node certificate for another host", "peer.example", certs.NodeCert, certs.NodeKey, false},
		{"client certificate, valid for no host", "localhost", certs.ClientCert, certs.ClientKey, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server := listener.TLSFiles{CertFile: certs.NodeCert, KeyFile: certs.NodeKey, TrustedCAFile: certs.CAFile, ClientCertAuth: true, AllowedHostnames: []string{tc.allowed}}
			serverConfig, err := server.ServerConfig()
			if err != nil {
				t.Fatal(err)
			}
			ln, err := listener.New("127.0.0.1:0", serverConfig)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					conn, err := ln.Accept()
					if err != nil {
						return
					}
					_ = conn.(*tls.Conn).Handshake()
					conn.Close()
				}
			}()
			clientConfig, err := listener.TLSFiles{CertFile: tc.certFile, KeyFile: tc.keyFile, TrustedCAFile: certs.CAFile}.ClientConfig()
			if err != nil {
				t.Fatal(err)
			}
			conn, err := tls.Dial("tcp", ln.Addr().String(), clientConfig)
			if err == nil {
				// TLS 1.3 reports the server's refusal on the first read.
				_, err = conn.Read(make([]byte, 1))
				conn.Close()
				if errors.Is(err, io.EOF) {
					err = nil
				}
			}
			if (err == nil) != tc.ok {
				t.Fatalf("handshake: %v, want success %v", err, tc.ok)
			}
		})
	}
}
