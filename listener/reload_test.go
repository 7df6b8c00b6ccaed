package listener_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"math/big"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/raftkv/raftkv/internal/testcerts"
	"github.com/raftkv/raftkv/listener"
	"github.com/raftkv/raftkv/pki"
)

// Log messages of the Reloader that the tests count.
const (
	reloadedCert = "reloaded the TLS certificate"
	keptCert     = "cannot reload the TLS certificate; keeping the previous one"
	keptCA       = "cannot reload the trusted CA bundle; keeping the previous one"
)

// TestReloaderServesRotatedCertificate: a server's next handshake after
// its certificate files are replaced presents the new certificate; a
// replacement that cannot be used keeps the previous one, logged once
// however many handshakes follow, until good files arrive.
func TestReloaderServesRotatedCertificate(t *testing.T) {
	certs := testcerts.New(t)
	lg, logs := observedLogger(t)
	r, err := listener.TLSFiles{CertFile: certs.NodeCert, KeyFile: certs.NodeKey, TrustedCAFile: certs.CAFile, ClientCertAuth: true}.NewReloader(lg)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, r.ServerConfig())
	client := clientConfig(t, certs.ClientCert, certs.ClientKey, certs.CAFile)
	expectServerSerial := func(want *big.Int) {
		t.Helper()
		for range 3 {
			if got := serverSerial(t, addr, client); got.Cmp(want) != 0 {
				t.Fatalf("the server presented serial %X, want %X", got, want)
			}
		}
	}

	expectServerSerial(testcerts.SerialOf(t, certs.NodeCert))
	current := certs.ReplaceNode(t, certs.CA).SerialNumber
	expectServerSerial(current)
	if n := logs.FilterMessage(reloadedCert).Len(); n != 1 {
		t.Errorf("%d reloads logged, want 1", n)
	}

	halfPEM := func(pem []byte) []byte { return pem[:len(pem)/2] }
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T)
		want  string // in the logged error
	}{
		{"not PEM", func(t *testing.T) { write(t, certs.NodeCert, []byte("not a certificate\n")) }, "failed to find any PEM data"},
		{"half-written certificate", func(t *testing.T) {
			write(t, certs.NodeCert, halfPEM(certs.CA.CertPEM()))
		}, "incomplete PEM block"},
		{"half-written key", func(t *testing.T) {
			key, err := os.ReadFile(certs.ClientKey)
			if err != nil {
				t.Fatal(err)
			}
			write(t, certs.NodeKey, halfPEM(key))
		}, "node-key.pem ends in an incomplete PEM block"},
		{"chain cut short", func(t *testing.T) {
			// A new key and its certificate, followed by a CA certificate
			// not yet fully written: the leaf alone would load.
			p, err := certs.CA.IssueNode([]string{"127.0.0.1"}, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			key, err := p.KeyPEM()
			if err != nil {
				t.Fatal(err)
			}
			write(t, certs.NodeKey, key)
			write(t, certs.NodeCert, append(p.CertPEM(), halfPEM(certs.CA.CertPEM())...))
		}, "incomplete PEM block"},
		{"key of another certificate", func(t *testing.T) {
			key, err := os.ReadFile(certs.ClientKey)
			if err != nil {
				t.Fatal(err)
			}
			write(t, certs.NodeKey, key)
		}, "private key does not match"},
		{"unreadable", func(t *testing.T) {
			if err := os.Remove(certs.NodeCert); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(certs.NodeCert, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "is a directory"},
		{"missing", func(t *testing.T) {
			if err := os.Remove(certs.NodeKey); err != nil {
				t.Fatal(err)
			}
		}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := logs.FilterMessage(keptCert).Len()
			tc.spoil(t)
			expectServerSerial(current)
			kept := logs.FilterMessage(keptCert).All()[before:]
			if len(kept) != 1 {
				t.Fatalf("%d warnings about the bad files, want 1", len(kept))
			}
			if got := kept[0].ContextMap()["error"]; !strings.Contains(got.(string), tc.want) {
				t.Errorf("logged error %q, want it to contain %q", got, tc.want)
			}
			current = certs.ReplaceNode(t, certs.CA).SerialNumber
			expectServerSerial(current)
		})
	}
}

// TestReloaderTrustsRotatedCA: a server that requires client certificates
// checks them against its CA bundle as the file holds it at the
// handshake: a CA added to it is trusted from the next handshake on, one
// taken out no longer is, and a bundle that cannot be used keeps the
// previous one.
func TestReloaderTrustsRotatedCA(t *testing.T) {
	certs := testcerts.New(t)
	lg, logs := observedLogger(t)
	r, err := listener.TLSFiles{CertFile: certs.NodeCert, KeyFile: certs.NodeKey, TrustedCAFile: certs.CAFile, ClientCertAuth: true}.NewReloader(lg)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, r.ServerConfig())
	newCert, newKey := testcerts.Issue(t, certs.OtherCA)
	newClient := clientConfig(t, newCert, newKey, certs.CAFile)
	expect := func(accepted bool) {
		t.Helper()
		got, err := clientSerialSeen(addr, newClient)
		switch {
		case accepted && err != nil:
			t.Fatalf("a client certificate of the added CA was refused: %v", err)
		case accepted && got != testcerts.SerialOf(t, newCert).String():
			t.Fatalf("the server saw client serial %s", got)
		case !accepted && err == nil:
			t.Fatal("a client certificate of a CA outside the bundle was accepted")
		}
	}

	expect(false)
	write(t, certs.CAFile, append(certs.CA.CertPEM(), certs.OtherCA.CertPEM()...))
	expect(true)
	write(t, certs.CAFile, []byte("not a CA\n"))
	expect(true)
	expect(true)
	if n := logs.FilterMessage(keptCA).Len(); n != 1 {
		t.Errorf("%d warnings about the bad CA file, want 1", n)
	}
	write(t, certs.CAFile, certs.CA.CertPEM())
	expect(false)
}

// TestReloaderDials: a dialer presents the certificate its files hold at
// each dial, trusts the CA bundle they hold then, and still checks the
// server's certificate against the host it dialed.
func TestReloaderDials(t *testing.T) {
	certs := testcerts.New(t)
	lg, _ := observedLogger(t)
	r, err := listener.TLSFiles{CertFile: certs.NodeCert, KeyFile: certs.NodeKey, TrustedCAFile: certs.CAFile}.NewReloader(lg)
	if err != nil {
		t.Fatal(err)
	}
	// Servers loaded once, from other copies of the files.
	server := func(ca *pki.KeyPair, hosts ...string) string {
		certFile, keyFile := testcerts.Issue(t, ca, hosts...)
		cfg, err := listener.TLSFiles{CertFile: certFile, KeyFile: keyFile, TrustedCAFile: certs.CAFile, ClientCertAuth: true}.ServerConfig()
		if err != nil {
			t.Fatal(err)
		}
		return serveTLS(t, cfg)
	}
	dial := func(addr string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := r.DialTLSContext(ctx, "tcp", addr)
		if err != nil {
			return "", err
		}
		defer conn.Close()
		return readLine(conn)
	}
	addr := server(certs.CA, "127.0.0.1")

	if got, err := dial(addr); err != nil || got != testcerts.SerialOf(t, certs.NodeCert).String() {
		t.Fatalf("dial: the server saw client serial %q, %v", got, err)
	}
	renewed := certs.ReplaceNode(t, certs.CA)
	if got, err := dial(addr); err != nil || got != renewed.SerialNumber.String() {
		t.Fatalf("dial after the rotation: the server saw client serial %q, %v; want %s", got, err, renewed.SerialNumber)
	}

	otherAddr := server(certs.OtherCA, "127.0.0.1")
	if _, err := dial(otherAddr); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("dial a server of a CA outside the bundle: %v, want an unknown authority", err)
	}
	write(t, certs.CAFile, append(certs.CA.CertPEM(), certs.OtherCA.CertPEM()...))
	if _, err := dial(otherAddr); err != nil {
		t.Fatalf("dial a server of a CA added to the bundle: %v", err)
	}

	elsewhere := server(certs.CA, "peer.example")
	if _, err := dial(elsewhere); err == nil || !strings.Contains(err.Error(), "for 127.0.0.1") {
		t.Fatalf("dial a server whose certificate is for another host: %v, want a refusal", err)
	}
}

// observedLogger logs to the test and keeps the entries for counting.
func observedLogger(t *testing.T) (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.InfoLevel)
	return zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core())), logs
}

// serveTLS serves cfg on a loopback port until the test ends. It completes
// each connection's handshake, answers one line, the serial number of the
// client's certificate ("none" without one), and closes it.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	ln, err := listener.New("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			tc := conn.(*tls.Conn)
			_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
			if tc.Handshake() == nil {
				serial := "none"
				if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
					serial = certs[0].SerialNumber.String()
				}
				_, _ = tc.Write([]byte(serial + "\n"))
			}
			tc.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

func clientConfig(t *testing.T, certFile, keyFile, caFile string) *tls.Config {
	t.Helper()
	cfg, err := listener.TLSFiles{CertFile: certFile, KeyFile: keyFile, TrustedCAFile: caFile}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// serverSerial is the serial number of the certificate the server at addr
// presents.
func serverSerial(t *testing.T, addr string, cfg *tls.Config) *big.Int {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

// clientSerialSeen is the serial number of the client certificate the
// server at addr received, or why the server refused it.
func clientSerialSeen(addr string, cfg *tls.Config) (string, error) {
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	// With TLS 1.3 a refused client certificate shows on the first read.
	return readLine(conn)
}

func readLine(conn net.Conn) (string, error) {
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}

// write replaces a file's content in place, as an editor or `cat >` does.
func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
