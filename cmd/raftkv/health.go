package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/raftkv/raftkv/client"
)

func newHealthCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Check the health of every endpoint",
		Long: `Ask every endpoint of --endpoints for its /health (etcd's check: the node
knows a leader, has applied what it knows committed, and a linearizable read
succeeds within a second), all at once, within --timeout, and print one line
per endpoint in the order of --endpoints, as etcdctl endpoint health does:

  http://127.0.0.1:12380 is healthy: took 3.21ms
  http://127.0.0.1:32380 is unhealthy: dial tcp 127.0.0.1:32380: connect: connection refused

Exits 0 when every endpoint is healthy, and 5 otherwise, after printing
every line. With -o json each endpoint is one line:
{"endpoint", "health", "took_ms", "reason" (when unhealthy)}.`,
		Example: `  raftkv health
  raftkv health --endpoints http://127.0.0.1:22380 -o json`,
		Args: cobra.NoArgs,
	}
	f := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return f.request(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
			results := endpointHealth(ctx, c, f.timeout)
			unhealthy := 0
			var err error
			for _, r := range results {
				if !r.Health {
					unhealthy++
				}
				if p.json {
					err = p.object(r)
				} else {
					err = p.text([]byte(r.String()))
				}
				if err != nil {
					return err
				}
			}
			if unhealthy > 0 {
				return &unhealthyError{unhealthy: unhealthy, total: len(results)}
			}
			return nil
		})
	}
	return cmd
}

// healthResult is one endpoint's line, and its JSON with -o json.
type healthResult struct {
	Endpoint string  `json:"endpoint"`
	Health   bool    `json:"health"`
	TookMs   float64 `json:"took_ms"` // milliseconds, to the microsecond
	Reason   string  `json:"reason,omitempty"`

	took time.Duration
}

func (r healthResult) String() string {
	if r.Health {
		return fmt.Sprintf("%s is healthy: took %v", r.Endpoint, threeDigits(r.took))
	}
	return fmt.Sprintf("%s is unhealthy: %s", r.Endpoint, r.Reason)
}

// endpointHealth asks every endpoint of c for its health, in parallel, and
// returns the answers in the order of the endpoints. timeout is the one
// that bounds ctx, for the reason of an endpoint that did not answer.
func endpointHealth(ctx context.Context, c *client.Client, timeout time.Duration) []healthResult {
	endpoints := c.Endpoints()
	results := make([]healthResult, len(endpoints))
	var wg sync.WaitGroup
	for i, e := range endpoints {
		wg.Go(func() {
			start := time.Now()
			h, err := c.HealthOf(ctx, e)
			took := time.Since(start)
			r := healthResult{Endpoint: e, Health: err == nil && h.OK, took: took,
				TookMs: float64(took.Microseconds()) / 1000, Reason: h.Reason}
			if err != nil {
				r.Reason = healthReason(err, timeout)
			}
			results[i] = r
		})
	}
	wg.Wait()
	return results
}

// healthReason is why an endpoint could not be asked, without the URL
// that the line already names: the connection's error, or the status of an
// answer that was neither 200 nor 503 (something other than a raftkv node
// may listen there).
func healthReason(err error, timeout time.Duration) string {
	var epErr *client.EndpointError
	var apiErr *client.APIError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no answer within --timeout %v", timeout)
	case errors.As(err, &epErr):
		return epErr.Err.Error()
	case errors.As(err, &apiErr):
		return fmt.Sprintf("answered %d %s", apiErr.Status, cmp.Or(apiErr.Code, http.StatusText(apiErr.Status)))
	}
	return err.Error()
}

// unhealthyError ends a health check that found unhealthy endpoints. It
// matches client.ErrUnavailable, so that the command exits 5, as when no
// endpoint can be reached.
type unhealthyError struct{ unhealthy, total int }

func (e *unhealthyError) Error() string {
	return fmt.Sprintf("health: %d of %d endpoints unhealthy", e.unhealthy, e.total)
}

func (e *unhealthyError) Is(target error) bool { return target == client.ErrUnavailable }
