package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httputil"
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
	// Checked here, so that a bad query is this node's 400, not passed on.
	q, err := parseQuery(r)
	if err != nil {
		return err
	}
	if err := onlyParams(q, "hash"); err != nil {
		return err
	}
	if _, err := boolParam(q, "hash"); err != nil {
		return err
	}
	if id == s.cfg.Cluster.ID() {
		return s.serveStatus(w, r, "")
	}
	target, published, found := s.memberClientURL(id)
	switch {
	case !found:
		return fmt.Errorf("%w: %d", raftnode.ErrMemberNotFound, id)
	case target == nil:
		return fmt.Errorf("%w: member %d has published no usable client URL (%q): it has not started", ErrMemberUnreachable, id, published)
	}
	target.Path, target.RawPath, target.RawQuery = "/v1/status", "", q.Encode()
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL, pr.Out.Host = target, target.Host
			// Only what the member needs: the caller's credentials. Its
			// cookies, conditions and ranges are not the member's business.
			pr.Out.Header = http.Header{}
			if a := r.Header.Values("Authorization"); len(a) > 0 {
				pr.Out.Header["Authorization"] = a
			}
			pr.SetXForwarded()
		},
		Transport: s.forwarder,
		ErrorLog:  s.proxyLog,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			s.cfg.Logger.Debug("asking a member for its status failed", zap.Uint64("member", id), zap.Error(err))
			// No answer of the member's: this node's view, as on any
			// other answer of its own.
			s.setRaftHeaders(w.Header())
			writeError(w, fmt.Errorf("%w: member %d at %s: %v", ErrMemberUnreachable, id, published, err))
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
