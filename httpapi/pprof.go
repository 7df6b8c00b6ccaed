package httpapi

import (
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"
)

// pprofRoute is /debug/pprof/, Go's profiler, on the client port when
// Config.EnablePprof is set (etcd's --enable-pprof). It is admin-only with
// access control on: profiles show the command line, memory contents by
// allocation site, and cost CPU while they run.
func pprofRoute() route {
	return route{"/debug/pprof/", routeDebugPprof, from("debug/pprof/"),
		[]allowed{{http.MethodGet, admin}, {http.MethodHead, admin}, {http.MethodPost, admin}}, (*Server).servePprof}
}

// servePprof serves one of net/http/pprof's pages. A CPU profile or a trace
// runs for its seconds parameter (30 by default) before it answers, longer
// than a request's write deadline (admit): that deadline is moved to after
// the run.
func (s *Server) servePprof(w http.ResponseWriter, r *http.Request, name string) error {
	switch name {
	case "profile", "trace":
		q, err := parseQuery(r)
		if err != nil {
			return err
		}
		secs := 30
		if v := q.Get("seconds"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return badRequest("invalid_seconds", "seconds must be a positive integer")
			}
			secs = n
		}
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Duration(secs)*time.Second + s.cfg.WriteTimeout))
		if name == "profile" {
			pprof.Profile(w, r)
		} else {
			pprof.Trace(w, r)
		}
	case "cmdline":
		pprof.Cmdline(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	default:
		// The index, and every named profile (heap, goroutine, ...) by its
		// path under /debug/pprof/.
		pprof.Index(w, r)
	}
	return nil
}
