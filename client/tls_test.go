package client_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/internal/testcerts"
)

// newTLSServer serves, over https with the node certificate of certs, the
// answers of a raftkv node that holds key "k" = "v" at revision 7, for the
// one read and the one write the tests make. With clientCerts it requires a
// client certificate signed by certs' CA, as `serve --client-cert-auth` does.
func newTLSServer(t *testing.T, certs *testcerts.Set, clientCerts bool) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/kv/k", func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("ETag", `"7"`)
		h.Set("X-Raftkv-Create-Revision", "7")
		h.Set("X-Raftkv-Mod-Revision", "7")
		h.Set("X-Raftkv-Version", "1")
		h.Set("X-Raftkv-Revision", "7")
		w.Write([]byte("v"))
	})
	mux.HandleFunc("PUT /v1/kv/k", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("ETag", `"8"`)
		w.Header().Set("X-Raftkv-Revision", "8")
		answerJSON(w, http.StatusOK, `{"revision":8,"create_revision":7,"mod_revision":8,"version":2,"created":false}`)
	})
	srv := httptest.NewUnstartedServer(mux)
	// The refused handshakes are what the tests want, not news.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	cert, err := tls.LoadX509KeyPair(certs.NodeCert, certs.NodeKey)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	if clientCerts {
		srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		srv.TLS.ClientCAs = certPool(t, certs.CAFile)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func certPool(t *testing.T, caFile string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("no certificate in %s", caFile)
	}
	return pool
}

// tlsConfig trusts caFile and, when certFile is set, presents that client
// certificate.
func tlsConfig(t *testing.T, caFile, certFile, keyFile string) *tls.Config {
	t.Helper()
	cfg := &tls.Config{RootCAs: certPool(t, caFile)}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

// TestTLS checks that the client verifies an https server against the CAs
// it is given, and says why when it fails.
func TestTLS(t *testing.T) {
	certs := testcerts.New(t)
	srv := newTLSServer(t, certs, false)

	t.Run("trusted CA", func(t *testing.T) {
		cl := newClient(t, []string{srv.URL}, client.WithTLS(tlsConfig(t, certs.CAFile, "", "")))
		kv, err := cl.Get(testContext(t), []byte("k"), "")
		if err != nil || string(kv.Value) != "v" || kv.ModRevision != 7 {
			t.Fatalf("get over https = %+v, %v", kv, err)
		}
	})

	t.Run("other CA", func(t *testing.T) {
		cl := newClient(t, []string{srv.URL}, client.WithTLS(tlsConfig(t, certs.OtherCAFile, "", "")))
		_, err := cl.Get(testContext(t), []byte("k"), "")
		var unknownCA x509.UnknownAuthorityError
		if !errors.Is(err, client.ErrUnavailable) || !errors.As(err, &unknownCA) ||
			!strings.Contains(err.Error(), "x509: certificate signed by unknown authority") {
			t.Fatalf("get from a server another CA signed: %v, want unavailable, naming the certificate's fault", err)
		}
	})

	t.Run("WithHTTPClient too", func(t *testing.T) {
		if _, err := client.New([]string{srv.URL}, client.WithTLS(&tls.Config{}), client.WithHTTPClient(srv.Client())); err == nil {
			t.Fatal("New accepted WithTLS with WithHTTPClient, whose transport it cannot change")
		}
	})
}

// TestTLSClientCertificate checks a server that requires a client
// certificate: it refuses a client without one, which the client reports
// as unavailable, not as a write of unknown outcome, and accepts one with a
// certificate its CA signed.
func TestTLSClientCertificate(t *testing.T) {
	certs := testcerts.New(t)
	srv := newTLSServer(t, certs, true)

	without := newClient(t, []string{srv.URL}, client.WithTLS(tlsConfig(t, certs.CAFile, "", "")))
	ctx := testContext(t)
	_, getErr := without.Get(ctx, []byte("k"), "")
	_, putErr := without.Put(ctx, []byte("k"), []byte("v2"), client.Condition{})
	for _, err := range []error{getErr, putErr} {
		if !errors.Is(err, client.ErrUnavailable) || errors.Is(err, client.ErrOutcomeUnknown) ||
			!strings.Contains(err.Error(), "certificate required") {
			t.Errorf("request without a client certificate: %v, want unavailable, saying a certificate is required", err)
		}
	}

	with := newClient(t, []string{srv.URL}, client.WithTLS(tlsConfig(t, certs.CAFile, certs.ClientCert, certs.ClientKey)))
	if kv, err := with.Get(ctx, []byte("k"), ""); err != nil || string(kv.Value) != "v" {
		t.Errorf("get with a client certificate = %+v, %v", kv, err)
	}
	if r, err := with.Put(ctx, []byte("k"), []byte("v2"), client.Condition{}); err != nil || r.Revision != 8 {
		t.Errorf("put with a client certificate = %+v, %v", r, err)
	}
}

// TestTLSFailover checks that a TLS failure on the first endpoint moves a
// read and a write on to the next, as a refused connection does: the
// request never reached a server.
func TestTLSFailover(t *testing.T) {
	certs := testcerts.New(t)
	good := newTLSServer(t, certs, false)
	cfg := tlsConfig(t, certs.CAFile, "", "")
	for _, tc := range []struct {
		name  string
		first string
	}{
		{"certificate of another CA", newTLSServer(t, testcerts.New(t), false).URL},
		{"client certificate required", newTLSServer(t, certs, true).URL},
		{"nothing listens", strings.Replace(closedPort(t), "http://", "https://", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := newClient(t, []string{tc.first, good.URL}, client.WithTLS(cfg))
			ctx := testContext(t)
			if r, err := cl.Put(ctx, []byte("k"), []byte("v2"), client.Condition{}); err != nil || r.Revision != 8 {
				t.Fatalf("put past the first endpoint = %+v, %v", r, err)
			}
			// The client now starts with the endpoint that answered: a
			// new one makes the read try the first endpoint too.
			cl = newClient(t, []string{tc.first, good.URL}, client.WithTLS(cfg))
			if kv, err := cl.Get(ctx, []byte("k"), ""); err != nil || string(kv.Value) != "v" {
				t.Fatalf("get past the first endpoint = %+v, %v", kv, err)
			}
		})
	}
}
