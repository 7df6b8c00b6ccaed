package testcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Consistency selects how a read is served.
type Consistency string

// The read consistencies of GET /{key}.
const (
	Linearizable Consistency = "linearizable"
	Serializable Consistency = "serializable"
)

// HTTPError is a response with an unexpected status.
type HTTPError struct {
	Method, URL string
	Status      int
	Body        string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s %s: status %d: %s", e.Method, e.URL, e.Status, strings.TrimSpace(e.Body))
}

// Put writes key=value through member id's client API (PUT /{key}, 204
// expected) and returns the write's revision, its raft log index.
func (c *Cluster) Put(id uint64, key, value string) (uint64, error) {
	var rev uint64
	err := c.do(id, http.MethodPut, url.PathEscape(key), value, http.StatusNoContent, func(resp *http.Response) error {
		var err error
		rev, err = strconv.ParseUint(resp.Header.Get("X-Raftkv-Revision"), 10, 64)
		if err != nil {
			return fmt.Errorf("X-Raftkv-Revision: %w", err)
		}
		return nil
	})
	return rev, err
}

// PutRetry is Put, retried for up to the cluster's WaitTimeout while the
// answer is 503 (not applied) or 504 (outcome unknown), as a client does
// after an election. Writing the same value again is harmless to tests that
// only need it stored. It is safe to call from any goroutine.
func (c *Cluster) PutRetry(id uint64, key, value string) (uint64, error) {
	deadline := time.Now().Add(c.cfg.WaitTimeout)
	for {
		rev, err := c.Put(id, key, value)
		var httpErr *HTTPError
		if err == nil || !errors.As(err, &httpErr) || time.Now().After(deadline) ||
			(httpErr.Status != http.StatusServiceUnavailable && httpErr.Status != http.StatusGatewayTimeout) {
			return rev, err
		}
		time.Sleep(retryBackoff) // a new leader is being elected
	}
}

// retryBackoff spaces PutRetry's attempts, well below an election timeout.
const retryBackoff = 20 * time.Millisecond

// Get reads key through member id's client API (GET /{key}, 200 expected).
func (c *Cluster) Get(id uint64, key string, consistency Consistency) (string, error) {
	var value string
	path := url.PathEscape(key) + "?consistency=" + string(consistency)
	err := c.do(id, http.MethodGet, path, "", http.StatusOK, func(resp *http.Response) error {
		b, err := io.ReadAll(resp.Body)
		value = string(b)
		return err
	})
	return value, err
}

// do sends one request to member id's client API and hands a response with
// the wanted status to read.
func (c *Cluster) do(id uint64, method, path, body string, want int, read func(*http.Response) error) error {
	if id == 0 || id > uint64(len(c.members)) || c.members[id-1].srv == nil {
		return fmt.Errorf("testcluster: member %d is not running", id)
	}
	// The server answers within its own request timeout; a little more
	// here tells a hung server from a slow answer.
	ctx, cancel := context.WithTimeout(context.Background(), 2*c.cfg.RequestTimeout)
	defer cancel()
	u := c.members[id-1].clientURL + "/" + path
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		return &HTTPError{Method: method, URL: u, Status: resp.StatusCode, Body: string(b)}
	}
	if read != nil {
		return read(resp)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// HTTPClient is the client the harness sends its requests with: with
// Config.TLS it trusts the test CA and presents the client certificate.
func (c *Cluster) HTTPClient() *http.Client { return c.http }
