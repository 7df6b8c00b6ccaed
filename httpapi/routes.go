package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// access is who may call a route's method when access control is on.
type access uint8

const (
	// anyone: the probes, which load balancers and orchestrators call
	// without credentials.
	anyone access = iota
	// identified: any user or token. A key route then checks the key
	// itself: only the handler knows it.
	identified
	// admin: a user or token with admin.
	admin
)

// allowed is a method a route takes and who may call it.
type allowed struct {
	method string
	access access
}

// route is one row of the client API: where it is (name, as the docs write
// it, and how a raw path matches), its metric label, the methods it takes
// with who may call each, and its handler. Dispatch, 405 answers with their
// Allow header, the route label of the metrics and the access check all
// read the same row.
type route struct {
	name  string
	label string
	// match reports whether the escaped path without its leading "/"
	// belongs to the route, and what part of it the handler is given.
	match   func(raw string) (rest string, ok bool)
	methods []allowed // in Allow order; none: any method, anyone (404s)
	serve   func(s *Server, w http.ResponseWriter, r *http.Request, rest string) error
}

// reservedRoots are root paths that belong to the server, not to keys. Keys
// with these names are reached through /v1/kv/.
var reservedRoots = map[string]bool{"metrics": true, "livez": true, "readyz": true, "health": true, "ui": true}

// apiRoutes is the client API, in match order: the first row whose path
// matches and that takes the method serves the request. With pprof, Go's
// profiler is served at /debug/pprof/, before the root API's keys.
func apiRoutes(pprof bool) []route {
	rs := []route{
		{"/livez", routeLivez, exact("livez"), reads(anyone), (*Server).serveLivez},
		{"/readyz", routeReadyz, exact("readyz"), reads(anyone), (*Server).serveReadyz},
		{"/health", routeHealth, exact("health"), reads(identified), (*Server).serveHealth},
		{"/metrics", routeMetrics, exact("metrics"), reads(identified), (*Server).serveMetrics},
		{"/v1/status", routeV1Status, exact("v1/status"), reads(identified), (*Server).serveStatus},
		{"/v1/stats", routeV1Stats, exact("v1/stats"), reads(identified), (*Server).serveStats},
		{"/v1/auth/self", routeV1Auth, exact("v1/auth/self"), reads(identified), (*Server).serveAuthSelf},
		// The dashboard's files hold no data: the page asks for
		// credentials and sends them with every request it makes.
		{"/ui/", routeUI, uiPath, reads(anyone), (*Server).serveUI},
		// PUT is listed on /v1/kv/ so that it gets empty_key, which says what
		// was missing, rather than a 405.
		{"/v1/kv/", routeV1List, exact("v1/kv/"), kvMethods, (*Server).serveKV},
		{"/v1/kv/{key}", routeV1KV, under("v1/kv/"), kvMethods, (*Server).serveKV},
		{"/v1/watch/{key}", routeV1Watch, from("v1/watch/"), []allowed{{http.MethodGet, identified}}, (*Server).serveWatch},
		{"/v1/members", routeV1Members, exact("v1/members"),
			append(reads(identified), allowed{http.MethodPost, admin}), (*Server).serveMemberTable},
		{"/v1/members/{id}", routeV1Members, memberID(""),
			[]allowed{{http.MethodPut, admin}, {http.MethodDelete, admin}}, (*Server).serveMember},
		{"/v1/members/{id}/status", routeV1MemberStatus, memberID("/status"), reads(identified), (*Server).serveMemberStatus},
		{"/v1/members/{id}/promote", routeV1Members, memberID("/promote"),
			[]allowed{{http.MethodPost, admin}}, (*Server).servePromote},
		// A transaction's keys are checked in its handler, where they are
		// known.
		{"/v1/txn", routeV1Txn, exact("v1/txn"), []allowed{{http.MethodPost, identified}}, (*Server).serveTxn},
		// Each request in a batch is checked in its own right: see batch.go.
		{"/v1/batch", routeV1Batch, exact("v1/batch"), []allowed{{http.MethodPost, identified}}, (*Server).serveBatch},
		{"/v1/leases", routeV1Leases, exact("v1/leases"),
			append(reads(identified), allowed{http.MethodPost, identified}), (*Server).serveLeases},
		// Revoking a lease deletes its keys: the handler checks them.
		{"/v1/leases/{id}", routeV1Leases, leaseID(""),
			append(reads(identified), allowed{http.MethodDelete, identified}), (*Server).serveLease},
		{"/v1/leases/{id}/keepalive", routeV1Leases, leaseID("/keepalive"),
			[]allowed{{http.MethodPost, identified}}, (*Server).serveKeepAlive},
		{"/v1/leases/{id}/keepalive/stream", routeV1LeaseStream, leaseID("/keepalive/stream"),
			[]allowed{{http.MethodPost, identified}}, (*Server).serveKeepAliveStream},
		{"/v1/snapshot", routeV1Snapshot, exact("v1/snapshot"), []allowed{{http.MethodGet, admin}}, (*Server).serveSnapshot},
		{"/v1/leader/transfer", routeV1Leader, exact("v1/leader/transfer"),
			[]allowed{{http.MethodPost, admin}}, (*Server).serveLeaderTransfer},
		{"/v1/", routeOther, v1Other, nil, (*Server).serveV1NotFound},
		{"/{reserved}/", routeOther, reservedNested, nil, (*Server).serveReservedNotFound},
		// raftexample's API: the same path is a key for GET and PUT and a
		// member id for POST and DELETE.
		{"/{key}", routeRootKey, root, []allowed{{http.MethodGet, identified}, {http.MethodHead, identified}, {http.MethodPut, identified}}, (*Server).serveRootKey},
		{"/{id}", routeRootMember, root, []allowed{{http.MethodPost, admin}, {http.MethodDelete, admin}}, (*Server).serveRootMember},
	}
	if pprof {
		at := slices.IndexFunc(rs, func(r route) bool { return r.name == "/v1/" })
		rs = slices.Insert(rs, at, pprofRoute())
	}
	return rs
}

var kvMethods = []allowed{{http.MethodGet, identified}, {http.MethodHead, identified},
	{http.MethodPut, identified}, {http.MethodDelete, identified}}

func reads(a access) []allowed {
	return []allowed{{http.MethodGet, a}, {http.MethodHead, a}}
}

func exact(path string) func(string) (string, bool) {
	return func(raw string) (string, bool) { return "", raw == path }
}

// under matches path followed by at least one byte, the rest.
func under(path string) func(string) (string, bool) {
	return func(raw string) (string, bool) {
		rest, ok := strings.CutPrefix(raw, path)
		return rest, ok && rest != ""
	}
}

// memberID matches v1/members/{id}{suffix}; the rest is the id.
// from matches path and what follows it, maybe nothing: the rest.
func from(path string) func(string) (string, bool) {
	return func(raw string) (string, bool) { return strings.CutPrefix(raw, path) }
}

func memberID(suffix string) func(string) (string, bool) { return idUnder("v1/members/", suffix) }

// leaseID matches v1/leases/{id}{suffix}; the rest is the id.
func leaseID(suffix string) func(string) (string, bool) { return idUnder("v1/leases/", suffix) }

func idUnder(path, suffix string) func(string) (string, bool) {
	return func(raw string) (string, bool) {
		rest, ok := strings.CutPrefix(raw, path)
		if !ok {
			return "", false
		}
		id, ok := strings.CutSuffix(rest, suffix)
		return id, ok && id != "" && !strings.Contains(id, "/")
	}
}

func v1Other(raw string) (string, bool) {
	return "", raw == "v1" || strings.HasPrefix(raw, "v1/")
}

// reservedNested matches paths under a reserved root, such as /metrics/x.
func reservedNested(raw string) (string, bool) {
	first, _, nested := strings.Cut(raw, "/")
	return first, nested && reservedRoots[first]
}

// root matches every other path: a key or a member id.
func root(raw string) (string, bool) { return raw, true }

// lookup finds the row that serves r. The first row whose path matches
// names the resource; it and the rows right after it that match too (the
// root API's /{key} and /{id}) are the resource's methods. When none of
// them takes the method, lookup returns the first with no error, and
// serving it answers 405.
func (s *Server) lookup(r *http.Request, raw string) (rt *route, rest string, resource []route) {
	start := len(s.routes) - 1 // the root API, which matches every path
	for i := range s.routes {
		if _, ok := s.routes[i].match(raw); ok {
			start = i
			break
		}
	}
	end := start + 1
	for end < len(s.routes) && len(s.routes[start].methods) > 0 && len(s.routes[end].methods) > 0 {
		if _, ok := s.routes[end].match(raw); !ok {
			break
		}
		end++
	}
	resource = s.routes[start:end]
	for i := range resource {
		row := &resource[i]
		if len(row.methods) == 0 || slices.ContainsFunc(row.methods, func(m allowed) bool { return m.method == r.Method }) {
			rest, _ := row.match(raw)
			return row, rest, nil
		}
	}
	rest, _ = resource[0].match(raw)
	return &resource[0], rest, resource
}

// accessOf is who may call rt with method.
func (rt *route) accessOf(method string) access {
	for _, m := range rt.methods {
		if m.method == method {
			return m.access
		}
	}
	return anyone // the 404 rows
}

// methodNotAllowedOn answers a method that no row of the resource takes.
func methodNotAllowedOn(w http.ResponseWriter, r *http.Request, resource []route) error {
	var names, allow []string
	for _, row := range resource {
		names = append(names, row.name)
		for _, m := range row.methods {
			allow = append(allow, m.method)
		}
	}
	return methodNotAllowed(w, fmt.Sprintf("%s is not allowed on %s", r.Method, strings.Join(names, " or ")), strings.Join(allow, ", "))
}

// v1Routes lists the versioned API's resources, for a 404 under /v1/.
func (s *Server) v1Routes() string {
	var names []string
	for _, rt := range s.routes {
		if strings.HasPrefix(rt.name, "/v1/") && len(rt.methods) > 0 && !slices.Contains(names, rt.name) {
			names = append(names, rt.name)
		}
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func (s *Server) serveV1NotFound(_ http.ResponseWriter, r *http.Request, _ string) error {
	return &Error{Status: http.StatusNotFound, Code: "not_found",
		Message: fmt.Sprintf("%s is not part of the API: use %s", r.URL.EscapedPath(), s.v1Routes())}
}

func (s *Server) serveReservedNotFound(_ http.ResponseWriter, r *http.Request, first string) error {
	return &Error{Status: http.StatusNotFound, Code: "not_found",
		Message: fmt.Sprintf("%s is not served: /%s is reserved by the server", r.URL.EscapedPath(), first)}
}
