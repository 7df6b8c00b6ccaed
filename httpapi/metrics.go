package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Routes are the values of the route label of the request metrics: a fixed
// set, never the path, so that keys do not become label values.
const (
	routeRootKey    = "root_key"    // GET, HEAD, PUT /{key}
	routeRootMember = "root_member" // POST, DELETE /{id}
	routeV1KV       = "v1_kv"       // /v1/kv/{key}
	routeV1List     = "v1_list"     // /v1/kv/ (listing and range deletes)
	routeV1Watch    = "v1_watch"    // /v1/watch/{key}; the duration is the stream's life
	routeV1Members  = "v1_members"  // /v1/members...
	routeV1Leader   = "v1_leader"   // /v1/leader/transfer
	routeV1Status   = "v1_status"   // /v1/status
	routeV1Stats    = "v1_stats"    // /v1/stats
	// /v1/members/{id}/status: its 503s say another member is down, not
	// that this one failed a request, so alerts on 5xx leave it out.
	routeV1MemberStatus = "v1_member_status"
	routeV1Auth         = "v1_auth"     // /v1/auth/self
	routeUI             = "ui"          // /ui/, the dashboard's files
	routeV1Snapshot     = "v1_snapshot" // /v1/snapshot; the duration is the whole backup's
	routeV1Txn          = "v1_txn"      // /v1/txn
	routeV1Batch        = "v1_batch"    // /v1/batch; each request in it is counted under its own route too
	routeV1Leases       = "v1_leases"   // /v1/leases, /v1/leases/{id}, its keepalive
	// /v1/leases/{id}/keepalive/stream; the duration is the stream's life
	routeV1LeaseStream = "v1_lease_stream"
	routeLivez         = "livez"
	routeReadyz        = "readyz"
	routeHealth        = "health"
	routeMetrics       = "metrics"
	routeDebugPprof    = "debug_pprof" // /debug/pprof/..., with EnablePprof
	routeOther         = "other"       // anything else (all of it answers 404)
)

// httpMetrics holds the API's request metrics, the /metrics handler and the
// recent traffic of /v1/stats. requests and duration are nil when no
// registerer was configured, handler when no gatherer was.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	handler  http.Handler
	recent   recentStats
}

func newHTTPMetrics(cfg Config) *httpMetrics {
	m := &httpMetrics{}
	if cfg.Gatherer != nil {
		m.handler = promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{
			ErrorLog: zap.NewStdLog(cfg.Logger.Named("metrics")),
			// Serve what could be gathered rather than nothing.
			ErrorHandling: promhttp.ContinueOnError,
		})
	}
	if cfg.Metrics == nil {
		return m
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "raftkv_http_requests_total",
		Help: "Client API requests answered, by route, method and status code.",
	}, []string{"route", "method", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "raftkv_http_request_duration_seconds",
		Help: "Client API request latency by route and method, from the request's arrival to the handler's return (for watches, the stream's life).",
		// 0.5 ms .. 8 s: a write waits for a quorum's fsync, a request at
		// most --request-timeout (5 s by default).
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
	}, []string{"route", "method"})
	for _, c := range []prometheus.Collector{requests, duration} {
		if err := cfg.Metrics.Register(c); err != nil {
			cfg.Logger.Error("http metrics are not exported: register them (is the registerer shared with another server?)", zap.Error(err))
			return m
		}
	}
	m.requests, m.duration = requests, duration
	return m
}

// track starts measuring a request. It returns the ResponseWriter to serve
// the request with, whose done method records it.
func (m *httpMetrics) track(w http.ResponseWriter, r *http.Request, route string) *trackedResponse {
	return &trackedResponse{ResponseWriter: w, m: m, route: route, method: method(r), start: time.Now()}
}

// trackedResponse records a response's status. Unwrap lets
// http.ResponseController reach the connection's writer, so watch streams
// still flush and lift their write deadline.
type trackedResponse struct {
	http.ResponseWriter
	m             *httpMetrics
	route, method string
	start         time.Time
	status        int
}

func (t *trackedResponse) WriteHeader(code int) {
	// 1xx responses are interim; the final status comes later.
	if t.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		t.status = code
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackedResponse) Write(b []byte) (int, error) {
	if t.status == 0 {
		t.status = http.StatusOK
	}
	return t.ResponseWriter.Write(b)
}

// Unwrap returns the underlying ResponseWriter, for http.ResponseController.
func (t *trackedResponse) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// done records the request once its handler returned.
func (t *trackedResponse) done() {
	status := t.status
	if status == 0 {
		status = http.StatusOK // what net/http sends for a handler that wrote nothing
	}
	now := time.Now()
	took := now.Sub(t.start)
	t.m.recent.record(now, kindOf(t.route, t.method), status, took)
	if t.m.requests == nil {
		return
	}
	t.m.requests.WithLabelValues(t.route, t.method, strconv.Itoa(status)).Inc()
	t.m.duration.WithLabelValues(t.route, t.method).Observe(took.Seconds())
}

// method names the request's method for the metrics; unknown methods share
// one value, so that a client cannot create label values at will.
func method(r *http.Request) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodDelete,
		http.MethodPatch, http.MethodOptions:
		return r.Method
	}
	return "other"
}

// serveMetrics serves GET /metrics in the Prometheus exposition format.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request, _ string) error {
	if s.metrics.handler == nil {
		return &Error{Status: http.StatusNotFound, Code: "not_found", Message: "this server exports no metrics"}
	}
	s.metrics.handler.ServeHTTP(w, r)
	return nil
}
