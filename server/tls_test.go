package server_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/internal/testcerts"
	"github.com/raftkv/raftkv/internal/testcluster"
	"github.com/raftkv/raftkv/listener"
	"github.com/raftkv/raftkv/raftnode"
)

// TestTLSCluster runs a cluster whose peer and client ports both serve TLS
// and require client certificates: writes replicate, a restarted follower
// catches up by a snapshot sent over TLS, a follower forwards a members
// request to the leader over TLS, and connections without the right
// certificates are refused.
func TestTLSCluster(t *testing.T) {
	const snapshotCount, catchUp = 50, 20
	certs := testcerts.New(t)
	c := testcluster.New(t, testcluster.Config{Size: 3, TLS: certs, SnapshotCount: snapshotCount, SnapshotCatchUpEntries: catchUp})
	leader := c.WaitLeader()
	for _, id := range c.Running() {
		if u := c.ClientURL(id); !strings.HasPrefix(u, "https://") {
			t.Fatalf("member %d client URL %s is not https", id, u)
		}
	}
	f := otherThan(c, leader)
	want := map[string]string{}
	c.WaitApplied(putKeys(t, c, leader, "before-stop", 10, want))
	stoppedAt := c.Server(f).KV().Applied()
	if err := c.Stop(f); err != nil {
		t.Fatalf("stop member %d: %v", f, err)
	}
	last := putKeys(t, c, leader, "while-stopped", 4*snapshotCount, want)
	c.Restart(f)
	c.WaitApplied(last, f)
	if st := c.Node(f).Status(); st.Snapshot <= stoppedAt {
		t.Errorf("member %d: snapshot index %d: it caught up without a snapshot", f, st.Snapshot)
	}
	checkKeys(t, c, f, want, testcluster.Serializable)

	// A follower forwards GET /v1/members to the leader's https client URL,
	// presenting its own certificate.
	resp, err := c.HTTPClient().Get(c.ClientURL(f) + "/v1/members")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "https://") {
		t.Fatalf("GET /v1/members on follower %d: %d %s", f, resp.StatusCode, body)
	}

	// A member's peer URLs must be https here.
	_, err = c.Node(leader).AddMember(testContext(t), 0, []string{"http://127.0.0.1:1"}, true)
	if !errors.Is(err, raftnode.ErrInvalidPeerURL) {
		t.Fatalf("adding a plain-http peer to a TLS cluster: %v, want ErrInvalidPeerURL", err)
	}

	// Refused: plain HTTP, a client that does not trust the CA, and one
	// without a client certificate, on both ports.
	withoutCert, err := listener.TLSFiles{CertFile: certs.ClientCert, KeyFile: certs.ClientKey, TrustedCAFile: certs.CAFile}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	withoutCert.Certificates, withoutCert.GetClientCertificate = nil, nil
	otherCA, err := listener.TLSFiles{CertFile: certs.ClientCert, KeyFile: certs.ClientKey, TrustedCAFile: certs.OtherCAFile}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	for _, port := range []struct{ name, url string }{
		{"client", c.ClientURL(leader) + "/livez"},
		{"peer", c.PeerURL(leader) + "/raft"},
	} {
		plain := strings.Replace(port.url, "https://", "http://", 1)
		if status, err := probe(nil, plain); err != nil || status != http.StatusBadRequest {
			t.Errorf("%s port over plain HTTP: %d %v, want 400 from the TLS server", port.name, status, err)
		}
		if _, err := probe(otherCA, port.url); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s port with another CA: %v, want a certificate error", port.name, err)
		}
		if status, err := probe(withoutCert, port.url); err == nil {
			t.Errorf("%s port without a client certificate answered %d", port.name, status)
		}
	}
}

// probe sends one GET with tlsConfig and returns the status.
func probe(tlsConfig *tls.Config, url string) (int, error) {
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig, DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(url)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestTLSCertificateRotation replaces the node certificate files under a
// running TLS cluster, as `raftkv cert create-node --overwrite` does: the
// next handshake on every member's client and peer port presents the new
// certificate, with no restart, and the cluster keeps serving: writes
// replicate, a follower forwards to the leader, a member restarted after
// the rotation rejoins over new peer connections both ways, and a new
// member joins. A bad certificate file afterwards leaves the new
// certificate in service.
func TestTLSCertificateRotation(t *testing.T) {
	certs := testcerts.New(t)
	c := testcluster.New(t, testcluster.Config{Size: 3, TLS: certs})
	leader := c.WaitLeader()
	want := map[string]string{}
	c.WaitApplied(putKeys(t, c, leader, "before", 5, want))
	harnessTLS := c.HTTPClient().Transport.(*http.Transport).TLSClientConfig
	expectSerial := func(when string, serial *big.Int) {
		t.Helper()
		for _, id := range c.Running() {
			for _, port := range []struct{ name, url string }{{"client", c.ClientURL(id)}, {"peer", c.PeerURL(id)}} {
				if got := presentedSerial(t, harnessTLS, port.url); got.Cmp(serial) != 0 {
					t.Errorf("%s: member %d's %s port presented serial %X, want %X", when, id, port.name, got, serial)
				}
			}
		}
	}
	// forwardMembers asks a follower for GET /v1/members, which it
	// forwards to the leader, presenting its own certificate. An election
	// on a loaded machine answers 503 meanwhile: retried.
	forwardMembers := func() {
		t.Helper()
		via := otherThan(c, c.WaitLeader())
		c.WaitFor(fmt.Sprintf("GET /v1/members on follower %d", via), func() error {
			if status, err := probe(harnessTLS, c.ClientURL(via)+"/v1/members"); err != nil || status != http.StatusOK {
				return fmt.Errorf("%d %v", status, err)
			}
			return nil
		})
	}

	expectSerial("before the rotation", testcerts.SerialOf(t, certs.NodeCert))
	renewed := certs.ReplaceNode(t, certs.CA).SerialNumber
	expectSerial("after the rotation", renewed)
	f := otherThan(c, leader)
	c.WaitApplied(putKeys(t, c, f, "rotated", 5, want))
	forwardMembers()
	if err := c.Stop(f); err != nil {
		t.Fatalf("stop member %d: %v", f, err)
	}
	c.Restart(f)
	leader = c.WaitLeader()
	c.WaitApplied(putKeys(t, c, leader, "restarted", 5, want))
	checkKeys(t, c, f, want, testcluster.Serializable)
	// A member added now asks the others for the member table with the
	// renewed certificate, then joins. The leader counts the restarted
	// member toward the quorum of the change once it is connected to it.
	c.WaitFor("the leader to reconnect to the restarted member", func() error {
		if !c.Node(leader).Started(f) {
			return errors.New("not connected")
		}
		return nil
	})
	joined := c.AddMember(leader)
	c.StartJoining(joined)
	c.WaitApplied(putKeys(t, c, leader, "joined", 5, want))
	checkKeys(t, c, joined, want, testcluster.Serializable)
	expectSerial("after a restart and a join", renewed)

	// A certificate file caught half-written keeps the renewed one in
	// service. (rafthttp, which reads the files at each of its own dials,
	// cannot dial meanwhile; its connections stay open, so writes go on.)
	if err := os.WriteFile(certs.NodeCert, []byte("-----BEGIN CERTIFICATE-----\nMIIB"), 0o644); err != nil {
		t.Fatal(err)
	}
	expectSerial("with a half-written certificate file", renewed)
	c.WaitApplied(putKeys(t, c, leader, "bad-file", 5, want))
	forwardMembers()
	expectSerial("after a fix", certs.ReplaceNode(t, certs.CA).SerialNumber)
}

// presentedSerial is the serial number of the certificate the server at
// rawURL presents.
func presentedSerial(t *testing.T, tlsConfig *tls.Config, rawURL string) *big.Int {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", u.Host, tlsConfig)
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", rawURL, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}
