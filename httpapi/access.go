package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/raftkv/raftkv/auth"
	"github.com/raftkv/raftkv/wire"
)

// Access control (docs/SECURITY.md). With Config.Auth set, every route but
// the probes needs credentials; the route table says which need admin, and
// the key routes check the key in their handler, where it is known. A
// follower forwards a request with its Authorization header, so the leader
// checks the caller again with the same file: the caller's identity is never
// vouched for by another node.

type identityKey struct{}

// identityOf returns the caller's identity, nil when access control is off
// (or on a probe).
func identityOf(r *http.Request) *auth.Identity {
	id, _ := r.Context().Value(identityKey{}).(*auth.Identity)
	return id
}

// authorize checks r's credentials against what the route needs and returns
// r carrying the caller's identity.
func (s *Server) authorize(r *http.Request, need access) (*http.Request, error) {
	if s.cfg.Auth == nil || need == anyone {
		return r, nil
	}
	id, err := s.cfg.Auth.Authenticate(r.Context(), r)
	if errors.Is(err, auth.ErrNoCredentials) {
		return r, fmt.Errorf("%w: access control is on; send a user's name and password (HTTP Basic: curl -u USER:PASSWORD, raftkv --user) or a token (Authorization: Bearer NAME.SECRET, raftkv --token)", err)
	}
	if err != nil {
		// The name is not secret and helps an operator find a client with
		// stale credentials; the secret is never logged.
		s.cfg.Logger.Debug("authentication failed", zap.String("remote", r.RemoteAddr), zap.Error(err))
		return r, err
	}
	if need == admin && !id.Admin() {
		return r, denied(id, "this request needs admin")
	}
	return r.WithContext(context.WithValue(r.Context(), identityKey{}, id)), nil
}

// crossOrigin refuses a change that a browser sends on behalf of a page of
// another origin. Such a page cannot read the answer, but it can make the
// browser send a form's POST, with the Basic credentials the browser keeps
// for this node once someone typed them at its prompt. net/http's
// CrossOriginProtection tells such requests by Sec-Fetch-Site or, where
// browsers leave that out (plain http to another host), by an Origin that
// is not the request's Host; GET, HEAD and OPTIONS pass, and so do clients
// that send neither header (curl, the Go client, the CLI). The dashboard's
// own requests are same-origin.
var crossOriginProtection http.CrossOriginProtection

func crossOrigin(r *http.Request) error {
	if err := crossOriginProtection.Check(r); err != nil {
		return &Error{Status: http.StatusForbidden, Code: "cross_origin_request",
			Message: fmt.Sprintf("a browser sent this %s for a page of another origin (%v); changes are taken only from this node's own pages and from clients that are not browsers", r.Method, err)}
	}
	return nil
}

// denied is a 403.
func denied(id *auth.Identity, why string) *Error {
	return &Error{Status: http.StatusForbidden, Code: "permission_denied",
		Message: fmt.Sprintf("%s: %s", id, why)}
}

// quoted shows a key in a message, cut short: a key can be kilobytes.
func quoted(key []byte) string {
	const show = 64
	if len(key) > show {
		return fmt.Sprintf("%q...", key[:show])
	}
	return fmt.Sprintf("%q", key)
}

// mayRead refuses a caller that may not read key.
func mayRead(r *http.Request, key []byte) error {
	if id := identityOf(r); id != nil && !id.CanRead(key) {
		return denied(id, "may not read key "+quoted(key))
	}
	return nil
}

// mayWrite refuses a caller that may not write key.
func mayWrite(r *http.Request, key []byte) error {
	if id := identityOf(r); id != nil && !id.CanWrite(key) {
		return denied(id, "may not write key "+quoted(key))
	}
	return nil
}

// mayReadAll refuses a caller that may not read every key under prefix: a
// watch of a prefix would otherwise show it changes it may not see.
func mayReadAll(r *http.Request, prefix []byte) error {
	if id := identityOf(r); id != nil && !id.CanReadAll(prefix) {
		return denied(id, "may not read every key under prefix "+quoted(prefix))
	}
	return nil
}

// mayWriteAll refuses a caller that may not write every key under prefix:
// a range delete takes them all or none.
func mayWriteAll(r *http.Request, prefix []byte) error {
	if id := identityOf(r); id != nil && !id.CanWriteAll(prefix) {
		return denied(id, "may not write every key under prefix "+quoted(prefix))
	}
	return nil
}

// readableUnder narrows a listing of prefix to what the caller may read: nil
// when it may read every key under prefix (or access control is off), else
// the prefixes under prefix it may read, none a prefix of another (maybe
// none at all: the listing is then empty).
func readableUnder(r *http.Request, prefix string) [][]byte {
	id := identityOf(r)
	if id == nil || id.CanReadAll([]byte(prefix)) {
		return nil
	}
	under := [][]byte{}
	for _, p := range id.ReadPrefixes() {
		if strings.HasPrefix(p, prefix) {
			under = append(under, []byte(p))
		}
	}
	return under
}

// serveAuthSelf serves GET /v1/auth/self: who the caller is and what it may
// do, so that the dashboard shows only what the user may do. Without access
// control anyone may do anything.
func (s *Server) serveAuthSelf(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := noParams(r); err != nil {
		return err
	}
	id := identityOf(r)
	if id == nil {
		writeJSON(w, wire.Self{Admin: true, Read: []string{""}, Write: []string{""}})
		return nil
	}
	self := wire.Self{AccessControl: true, Kind: string(id.Kind), Name: id.Name, Admin: id.Admin(),
		Read: id.ReadPrefixes(), Write: id.WritePrefixes()}
	if self.Admin {
		self.Read, self.Write = []string{""}, []string{""}
	}
	// Lists, not null, for the page's code.
	if self.Read == nil {
		self.Read = []string{}
	}
	if self.Write == nil {
		self.Write = []string{}
	}
	writeJSON(w, self)
	return nil
}
