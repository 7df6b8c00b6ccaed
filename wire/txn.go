// Package wire holds the shapes of raftkv's HTTP API that the server, the
// Go client and the tests share, so that none of them keeps a copy that can
// drift from the others: the JSON bodies, and the binary batch format
// (batch.go). docs/API.md documents them. Keys and values are []byte,
// base64 in JSON.
package wire

// KeyValue is a key with its value and revisions.
type KeyValue struct {
	Key            []byte `json:"key"`
	Value          []byte `json:"value"`
	CreateRevision uint64 `json:"create_revision"`
	ModRevision    uint64 `json:"mod_revision"`
	Version        uint64 `json:"version"`
	// Lease is the lease the key is attached to; absent for none.
	Lease uint64 `json:"lease,omitempty"`
}

// TxnRequest is the body of POST /v1/txn: when every compare holds, the
// success operations run, else the failure ones, atomically at one
// revision.
type TxnRequest struct {
	Compare []TxnCompare `json:"compare,omitempty"`
	Success []TxnOp      `json:"success,omitempty"`
	Failure []TxnOp      `json:"failure,omitempty"`
}

// Compare targets and operators, as TxnCompare spells them.
const (
	TargetValue          = "value"
	TargetVersion        = "version"
	TargetCreateRevision = "create_revision"
	TargetModRevision    = "mod_revision"
	TargetLease          = "lease"
)

// TxnCompare compares one of a key's fields with the field of the same
// name, which alone must be set: Value for "value" (bytes), or Version,
// CreateRevision, ModRevision or Lease (0: no lease). Op is =, !=, < or >.
type TxnCompare struct {
	Key    []byte `json:"key"`
	Target string `json:"target"`
	Op     string `json:"op"`
	// Value is never left out: "" is a value to compare with, and a
	// numeric compare sends null, which is none.
	Value          []byte  `json:"value"`
	Version        *uint64 `json:"version,omitempty"`
	CreateRevision *uint64 `json:"create_revision,omitempty"`
	ModRevision    *uint64 `json:"mod_revision,omitempty"`
	Lease          *uint64 `json:"lease,omitempty"`
}

// TxnOp is one operation; exactly one field is set.
type TxnOp struct {
	Put          *TxnPut   `json:"put,omitempty"`
	Delete       *TxnKey   `json:"delete,omitempty"`
	DeletePrefix *TxnRange `json:"delete_prefix,omitempty"`
	Get          *TxnKey   `json:"get,omitempty"`
	List         *TxnRange `json:"list,omitempty"`
}

// TxnPut writes Value under Key, attached to Lease (absent: none).
type TxnPut struct {
	Key   []byte `json:"key"`
	Value []byte `json:"value"`
	Lease uint64 `json:"lease,omitempty"`
}

// TxnKey names one key.
type TxnKey struct {
	Key []byte `json:"key"`
}

// TxnRange names the keys under Prefix (every key when empty); Limit bounds
// a list (default 1000, at most 10000).
type TxnRange struct {
	Prefix []byte `json:"prefix"`
	Limit  int    `json:"limit,omitempty"`
}

// TxnResponse is the answer to a transaction: which branch ran, the store
// revision after it (the transaction's own when it wrote), and each
// operation's result in order.
type TxnResponse struct {
	Succeeded bool          `json:"succeeded"`
	Revision  uint64        `json:"revision"`
	Results   []TxnOpResult `json:"results"`
}

// TxnOpResult is one operation's result, under the operation's name.
type TxnOpResult struct {
	Put          *TxnPutResult    `json:"put,omitempty"`
	Delete       *TxnDeleteResult `json:"delete,omitempty"`
	DeletePrefix *TxnDeleteResult `json:"delete_prefix,omitempty"`
	Get          *TxnGetResult    `json:"get,omitempty"`
	List         *TxnListResult   `json:"list,omitempty"`
}

// TxnPutResult is the key as the put left it.
type TxnPutResult struct {
	KV      KeyValue `json:"kv"`
	Created bool     `json:"created"`
}

// TxnDeleteResult counts the keys a delete removed (0 or 1 for delete).
type TxnDeleteResult struct {
	Deleted int `json:"deleted"`
}

// TxnGetResult is the key, when it exists.
type TxnGetResult struct {
	Found bool      `json:"found"`
	KV    *KeyValue `json:"kv,omitempty"`
}

// TxnListResult is a page of keys, in key order.
type TxnListResult struct {
	KVs  []KeyValue `json:"kvs"`
	More bool       `json:"more"`
}
