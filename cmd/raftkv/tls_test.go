package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/internal/testcerts"
)

// newTLSServer serves https with the node certificate of certs and requires
// a client certificate their CA signed, as `serve --client-cert-auth`
// does. It answers the two requests the tests make as a raftkv node would:
// `get k` (v1) and bench's root-API writes.
func newTLSServer(t *testing.T, certs *testcerts.Set) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/kv/k", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		io.WriteString(w, "v")
	})
	mux.HandleFunc("PUT /v1/kv/{key}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"revision":1}`)
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	cert, err := tls.LoadX509KeyPair(certs.NodeCert, certs.NodeKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(certs.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// TestTLSFlags runs `raftkv get` against an https server that requires a
// client certificate, with the TLS flags given on the command line or in
// the environment, and checks the exit code and what the command says.
func TestTLSFlags(t *testing.T) {
	certs := testcerts.New(t)
	srv := newTLSServer(t, certs)
	get := func(flags ...string) []string { return append([]string{"get", "k"}, flags...) }
	for _, tc := range []struct {
		name string
		args []string // without --endpoints
		env  map[string]string
		code int
		want string // in the output, or in the error
	}{
		{name: "ca and client certificate", args: get("--cacert", certs.CAFile, "--cert", certs.ClientCert, "--key", certs.ClientKey), code: exitOK, want: "v\n"},
		{name: "from the environment", args: get(), env: map[string]string{"RAFTKV_CACERT": certs.CAFile, "RAFTKV_CERT": certs.ClientCert, "RAFTKV_KEY": certs.ClientKey}, code: exitOK, want: "v\n"},
		{name: "insecure", args: get("--insecure-skip-tls-verify", "--cert", certs.ClientCert, "--key", certs.ClientKey), code: exitOK, want: "v\n"},
		{name: "insecure from the environment", args: get("--cert", certs.ClientCert, "--key", certs.ClientKey), env: map[string]string{"RAFTKV_INSECURE_SKIP_TLS_VERIFY": "true"}, code: exitOK, want: "v\n"},

		{name: "no client certificate", args: get("--cacert", certs.CAFile), code: exitUnavailable, want: "tls: certificate required"},
		{name: "other CA", args: get("--cacert", certs.OtherCAFile, "--cert", certs.ClientCert, "--key", certs.ClientKey), code: exitUnavailable, want: "x509: certificate signed by unknown authority"},
		{name: "system CAs", args: get("--cert", certs.ClientCert, "--key", certs.ClientKey), code: exitUnavailable, want: "x509: certificate signed by unknown authority"},

		{name: "cert without key", args: get("--cert", certs.ClientCert), code: exitUsage, want: "--cert and --key go together"},
		{name: "key without cert", args: get("--key", certs.ClientKey), code: exitUsage, want: "--cert and --key go together"},
		{name: "cert without key in the environment", args: get(), env: map[string]string{"RAFTKV_CERT": certs.ClientCert}, code: exitUsage, want: "--cert and --key go together"},
		{name: "bench: cert without key", args: []string{"bench", "--cert", certs.ClientCert}, code: exitUsage, want: "--cert and --key go together"},
		{name: "missing CA file", args: get("--cacert", certs.CAFile+".missing"), code: exitError, want: "--cacert: open " + certs.CAFile + ".missing: no such file"},
		{name: "CA file without a certificate", args: get("--cacert", certs.ClientKey), code: exitError, want: "--cacert: " + certs.ClientKey + " holds no PEM certificate"},
		{name: "key of another certificate", args: get("--cert", certs.ClientCert, "--key", certs.NodeKey), code: exitError, want: "private key does not match public key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := append(tc.args, "--endpoints", srv.URL)
			got, err := runCommand(t, args...)
			if err != nil {
				got = err.Error()
			}
			if code := exitStatus(err); code != tc.code || !strings.Contains(got, tc.want) {
				t.Fatalf("raftkv %s: exit %d, %q; want exit %d, %q", strings.Join(args, " "), code, got, tc.code, tc.want)
			}
		})
	}
}

// TestBenchTLS checks that bench sends its load over https with the TLS
// flags, and reports the refusal of a server that wants a client
// certificate as the reason of its failures.
func TestBenchTLS(t *testing.T) {
	certs := testcerts.New(t)
	srv := newTLSServer(t, certs)
	run := func(f tlsFlags) string {
		t.Helper()
		var out bytes.Buffer
		err := runBench(context.Background(), &out, benchFlags{endpoints: srv.URL, op: "put", clients: 2, requests: 4, keys: 2, tls: f})
		if err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	if out := run(tlsFlags{caFile: certs.CAFile, certFile: certs.ClientCert, keyFile: certs.ClientKey}); !strings.HasPrefix(out, "put: 4 ok, 0 failed") {
		t.Fatalf("bench over https printed %q", out)
	}
	if out := run(tlsFlags{caFile: certs.CAFile}); !strings.HasPrefix(out, "put: 0 ok, 4 failed") || !strings.Contains(out, "tls: certificate required") {
		t.Fatalf("bench without a client certificate printed %q", out)
	}
}
