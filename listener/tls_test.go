package listener_test

import (
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
