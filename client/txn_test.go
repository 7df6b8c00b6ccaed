package client_test

import (
	"errors"
	"testing"

	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/internal/testcluster"
)

// TestTxn runs a transaction through a follower with the client: a compare
// on a key's version that holds, then the same one stale, which runs the
// failure branch; and a malformed one, refused as an APIError.
func TestTxn(t *testing.T) {
	c, leader := startCluster(t, testcluster.Config{})
	cl := newClient(t, urls(c, leader%3+1, leader))
	ctx := testContext(t)
	zero := uint64(0)
	create := client.TxnRequest{
		Compare: []client.TxnCompare{{Key: []byte("svc/a"), Target: "version", Op: "=", Version: &zero}},
		Success: []client.TxnOp{{Put: &client.TxnPut{Key: []byte("svc/a"), Value: []byte("1")}},
			{Put: &client.TxnPut{Key: []byte("svc/b"), Value: []byte("2")}}},
		Failure: []client.TxnOp{{Get: &client.TxnKey{Key: []byte("svc/a")}}},
	}
	res, err := cl.Txn(ctx, create)
	if err != nil || !res.Succeeded || len(res.Results) != 2 || !res.Results[0].Put.Created || res.Revision == 0 {
		t.Fatalf("create: %+v, %v", res, err)
	}
	again, err := cl.Txn(ctx, create)
	if err != nil || again.Succeeded || !again.Results[0].Get.Found || string(again.Results[0].Get.KV.Value) != "1" ||
		again.Results[0].Get.KV.ModRevision != res.Revision {
		t.Fatalf("the same create again: %+v, %v", again, err)
	}
	// An empty value is a value: the compare goes out as "value": "".
	mustPut(t, cl, "svc/empty", "")
	empty, err := cl.Txn(ctx, client.TxnRequest{Compare: []client.TxnCompare{{Key: []byte("svc/empty"), Target: "value", Op: "=", Value: []byte{}}}})
	if err != nil || !empty.Succeeded {
		t.Fatalf("compare with an empty value: %+v, %v", empty, err)
	}
	_, err = cl.Txn(ctx, client.TxnRequest{Success: []client.TxnOp{{}}})
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Code != "invalid_txn" {
		t.Fatalf("an empty operation: %v, want a 400 invalid_txn", err)
	}
}
