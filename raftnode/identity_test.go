package raftnode

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/raftkv/raftkv/listener"
)

// closedURL is a peer URL where nothing listens: dialing it is refused at
// once.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

// peerAnswering serves clusterPath as a running member would, knowing
// member 1 at url in cluster clusterID.
func peerAnswering(t *testing.T, clusterID uint64, url string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != clusterPath {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(clusterInfo{ClusterID: FormatID(clusterID), Members: []Member{{ID: 1, PeerURLs: []string{url}}}})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestCheckStoredPeerURLs: a restarted member whose stored member table
// does not fit its own URL in the cluster list, or whose peer TLS setting
// does not fit the stored URLs' scheme, is refused in one line that says
// what is stored and what to do; the cluster list's other entries do not
// matter, and a URL the running cluster already moved the member to is
// accepted.
func TestCheckStoredPeerURLs(t *testing.T) {
	const clusterID = 0xc1
	tlsOn := listener.TLSFiles{CertFile: "node.pem", KeyFile: "node-key.pem"}
	table := func(urls ...string) *membership {
		m := newMembership()
		for i, u := range urls {
			m.apply(addNode(uint64(i+1), u))
		}
		return m
	}
	http1, http2, http3 := closedURL(t), closedURL(t), closedURL(t)
	moved := closedURL(t)
	https := func(u string) string { return strings.Replace(u, "http://", "https://", 1) }

	for _, tc := range []struct {
		name   string
		stored *membership
		id     uint64
		peers  []string
		tls    listener.TLSFiles
		want   []string // in the error; nil for accepted
	}{
		{name: "as stored", stored: table(http1, http2, http3), id: 1, peers: []string{http1, http2, http3}},
		{name: "only this member's URL in the list", stored: table(http1, http2, http3), id: 1, peers: []string{http1}},
		{name: "other entries of the list differ", stored: table(http1, http2, http3), id: 3, peers: []string{moved, closedURL(t), http3}},
		{name: "https as stored", stored: table(https(http1), https(http2)), id: 2, peers: []string{https(http1), https(http2)}, tls: tlsOn},
		{name: "member not in its own table", stored: table(http1, http2), id: 3, peers: []string{http1, http2, http3}},
		{
			name: "http data dir restarted with peer TLS", stored: table(http1, http2, http3), id: 1,
			peers: []string{https(http1), https(http2), https(http3)}, tls: tlsOn,
			want: []string{"holds a member table with plain http peer URLs (member 1: " + http1 + "; the cluster list gives " + https(http1) + ") but peer TLS is on", "without peer TLS", "make clean"},
		},
		{
			name: "https data dir restarted without peer TLS", stored: table(https(http1), https(http2)), id: 2,
			peers: []string{http1, http2},
			want:  []string{"with https peer URLs (member 2: " + https(http2) + "; the cluster list gives " + http2 + ") but peer TLS is off", "start the node with peer TLS"},
		},
		{
			name: "another member stored with plain http under peer TLS", stored: table(https(http1), http2), id: 1,
			peers: []string{https(http1)}, tls: tlsOn,
			want: []string{"with plain http peer URLs (member 2: " + http2 + ") but peer TLS is on"},
		},
		{
			name: "own URL moved, no peer reachable", stored: table(http1, http2, http3), id: 1,
			peers: []string{moved, http2, http3},
			want:  []string{"stores member 1's peer URL as " + http1 + ", not " + moved, "no running peer knows it", "raftkv member update 1 " + moved},
		},
		{
			name: "own URL moved, confirmed by a running peer", stored: table(http1, peerAnswering(t, clusterID, moved), http3), id: 1,
			peers: []string{moved, http2, http3},
		},
		{
			name: "own URL moved, a peer of another cluster knows it there", stored: table(http1, peerAnswering(t, clusterID+1, moved)), id: 1,
			peers: []string{moved, http2},
			want:  []string{"no running peer knows it"},
		},
		{
			name: "own URL moved, the running peers know the stored one", stored: table(http1, peerAnswering(t, clusterID, http1)), id: 1,
			peers: []string{moved, http2},
			want:  []string{"no running peer knows it"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &Config{ID: tc.id, Peers: tc.peers, DataDir: "raftkv-x", PeerTLS: tc.tls}
			err := checkStoredPeerURLs(zaptest.NewLogger(t), cfg, clusterID, tc.stored)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("got %v, want ErrInvalidConfig", err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || !strings.Contains(msg, "invalid configuration: raftkv-x ") {
				t.Errorf("want one line naming the data dir, got %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
		})
	}
}
