package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/raftkv/raftkv/wire"
)

// The transaction's JSON shapes, shared with the server (package wire).
type (
	TxnRequest  = wire.TxnRequest
	TxnCompare  = wire.TxnCompare
	TxnOp       = wire.TxnOp
	TxnPut      = wire.TxnPut
	TxnKey      = wire.TxnKey
	TxnRange    = wire.TxnRange
	TxnResponse = wire.TxnResponse
	TxnOpResult = wire.TxnOpResult
)

// Txn applies a transaction (POST /v1/txn): when every compare holds the
// success operations run, else the failure ones, atomically at one
// revision. A transaction is a write: it is sent to another endpoint only
// when it cannot have reached the cluster, and one whose answer was lost is
// an error matching ErrOutcomeUnknown (compare again before retrying).
func (c *Client) Txn(ctx context.Context, req TxnRequest) (TxnResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return TxnResponse{}, fmt.Errorf("txn: %w", err)
	}
	resp, _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/txn", header: jsonHeader(), body: body})
	if err != nil {
		return TxnResponse{}, fmt.Errorf("txn: %w", err)
	}
	var out TxnResponse
	if err := decodeJSON(resp, &out); err != nil {
		return TxnResponse{}, fmt.Errorf("txn: %w", err)
	}
	return out, nil
}
