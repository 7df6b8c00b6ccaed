package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/raftkv/raftkv/raftnode"
)

// memberStatusTimeout bounds how long GET /v1/members/{id}/status waits for
// the member: the dashboard asks every second, and a member that is down
// should show as such at once, not after a request timeout.
const memberStatusTimeout = 2 * time.Second

// serveMemberStatus serves GET /v1/members/{id}/status: the member's own
// GET /v1/status, asked at the client URL it published with the caller's
// credentials (the member checks them again, as a leader checks a
// forwarded request). It lets one page, on one node and one origin, show
// every member.
func (s *Server) serveMemberStatus(w http.ResponseWriter, r *http.Request, rawID string) error {
	id, err := parseV1MemberID(rawID)
	if err != nil {
		return err
	}
	if id == s.cfg.Cluster.ID() {
		return s.serveStatus(w, r, "")
	}
	var clientURL string
	found := false
	for _, m := range s.cfg.Cluster.Members() {
		if m.ID == id {
			found = true
			if len(m.ClientURLs) > 0 {
				clientURL = m.ClientURLs[0]
			}
		}
	}
	if !found {
		return fmt.Errorf("%w: %d", raftnode.ErrMemberNotFound, id)
	}
	target, err := url.Parse(clientURL)
	if clientURL == "" || err != nil || target.Host == "" {
		return &Error{Status: http.StatusServiceUnavailable, Code: "member_unreachable",
			Message: fmt.Sprintf("member %d has published no usable client URL (%q): it has not started", id, clientURL)}
	}
	target.Path, target.RawPath = "/v1/status", ""
	target.RawQuery = r.URL.RawQuery
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = target
			pr.Out.Host = target.Host
			pr.SetXForwarded()
			pr.Out.Header.Set(forwardedHeader, strconv.FormatUint(s.cfg.Cluster.ID(), 10))
		},
		Transport: s.forwarder,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			s.cfg.Logger.Debug("asking a member for its status failed", zap.Uint64("member", id), zap.Error(err))
			writeError(w, &Error{Status: http.StatusServiceUnavailable, Code: "member_unreachable",
				Message: fmt.Sprintf("member %d did not answer at %s: %v", id, clientURL, err)})
		},
	}
	// The member's headers describe its answer.
	w.Header().Del("X-Raft-Leader")
	w.Header().Del("X-Raft-Term")
	ctx, cancel := context.WithTimeout(r.Context(), memberStatusTimeout)
	defer cancel()
	proxy.ServeHTTP(w, r.WithContext(ctx))
	return nil
}
