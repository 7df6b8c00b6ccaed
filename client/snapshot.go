package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// Snapshot is a backup as it streams from a member (GET /v1/snapshot): the
// format of package backup, which reads and checks it. Close its Body.
type Snapshot struct {
	Body io.ReadCloser
	// Size is the backup's length in bytes; Revision the store revision it
	// holds; Endpoint the member that serves it.
	Size     int64
	Revision uint64
	Endpoint string
}

// Snapshot asks a member for a backup of the whole store. With
// Linearizable it holds every write acknowledged before the call; with
// Serializable, what that member has applied. Only the request is retried
// on another endpoint: once the backup streams, ctx bounds the reading of
// all of it, and a broken stream is the caller's to start again.
func (c *Client) Snapshot(ctx context.Context, consistency Consistency) (*Snapshot, error) {
	resp, i, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/snapshot", query: consistencyQuery(consistency), idempotent: true})
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return &Snapshot{Body: resp.Body, Size: resp.ContentLength, Revision: headerUint(resp.Header, "X-Raftkv-Revision"),
		Endpoint: c.endpoints[i]}, nil
}
