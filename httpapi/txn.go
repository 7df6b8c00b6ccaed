package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/raftkv/raftkv/kvstore"
	"github.com/raftkv/raftkv/wire"
)

// serveTxn applies a transaction (POST /v1/txn): compares, then the
// operations of the branch they choose, atomically at one revision inside
// the state machine. Both branches are checked before anything is proposed:
// their shape, the limits, and, with access control on, every key either
// branch reads or writes, since the caller cannot know which one runs.
func (s *Server) serveTxn(w http.ResponseWriter, r *http.Request, _ string) error {
	q, err := parseQuery(r)
	if err != nil {
		return err
	}
	if err := onlyParams(q, "encoding"); err != nil {
		return err
	}
	enc, err := encodingParam(q)
	if err != nil {
		return err
	}
	var req wire.TxnRequest
	if err := decodeBodyUpTo(w, r, &req, s.cfg.MaxRequestBytes, false, "invalid_txn"); err != nil {
		return err
	}
	t, err := toTxn(&req)
	if err == nil {
		err = s.checkTxn(r, t, enc)
	}
	var res kvstore.TxnResult
	var revision uint64
	if err == nil {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		// KV.Txn validates the transaction before it proposes it.
		res, revision, err = s.cfg.KV.Txn(ctx, t)
	}
	var te *kvstore.TxnError
	if errors.As(err, &te) {
		return badRequest(te.Code, te.Message)
	}
	if err != nil {
		return err
	}
	setRevision(w.Header(), revision)
	if enc == encodeText {
		// What a get or list read is known only once the transaction is
		// applied, so a key or value that text cannot carry cannot fail
		// the request: the answer says it is in base64 instead, whole.
		if text, err := txnAsText(res, revision); err == nil {
			writeJSON(w, text)
			return nil
		}
		writeJSON(w, txnBase64Response{TxnResponse: fromTxnResult(res, revision), Encoding: "base64"})
		return nil
	}
	writeJSON(w, fromTxnResult(res, revision))
	return nil
}

// txnBase64Response is a text-mode answer that fell back to base64.
type txnBase64Response struct {
	wire.TxnResponse
	Encoding string `json:"encoding"`
}

// The answer with encoding=text: wire.TxnResponse with each key-value as a
// listing shows it in the request's encoding.
type (
	txnTextResponse struct {
		Succeeded bool            `json:"succeeded"`
		Revision  uint64          `json:"revision"`
		Results   []txnTextResult `json:"results"`
		Encoding  string          `json:"encoding"` // "text"
	}
	txnTextResult struct {
		Put          *txnTextPut           `json:"put,omitempty"`
		Delete       *wire.TxnDeleteResult `json:"delete,omitempty"`
		DeletePrefix *wire.TxnDeleteResult `json:"delete_prefix,omitempty"`
		Get          *txnTextGet           `json:"get,omitempty"`
		List         *txnTextList          `json:"list,omitempty"`
	}
	txnTextPut struct {
		KV      listedKV `json:"kv"`
		Created bool     `json:"created"`
	}
	txnTextGet struct {
		Found bool      `json:"found"`
		KV    *listedKV `json:"kv,omitempty"`
	}
	txnTextList struct {
		KVs  []listedKV `json:"kvs"`
		More bool       `json:"more"`
	}
)

// txnAsText is the answer with its keys and values as text, or ErrNotUTF8.
func txnAsText(res kvstore.TxnResult, revision uint64) (txnTextResponse, error) {
	t := txnTextResponse{Succeeded: res.Succeeded, Revision: revision, Results: make([]txnTextResult, len(res.Results)), Encoding: "text"}
	for i, r := range res.Results {
		var err error
		tr := &t.Results[i]
		switch r.Kind {
		case kvstore.TxnPut:
			tr.Put = &txnTextPut{Created: r.Created}
			tr.Put.KV, err = encodeText.listed(r.KV, false)
		case kvstore.TxnDelete:
			tr.Delete = &wire.TxnDeleteResult{Deleted: r.Deleted}
		case kvstore.TxnDeletePrefix:
			tr.DeletePrefix = &wire.TxnDeleteResult{Deleted: r.Deleted}
		case kvstore.TxnGet:
			tr.Get = &txnTextGet{Found: r.Found}
			if r.Found {
				var kv listedKV
				kv, err = encodeText.listed(r.KV, false)
				tr.Get.KV = &kv
			}
		case kvstore.TxnList:
			tr.List = &txnTextList{KVs: make([]listedKV, len(r.KVs)), More: r.More}
			for j := range r.KVs {
				if tr.List.KVs[j], err = encodeText.listed(r.KVs[j], false); err != nil {
					break
				}
			}
		}
		if err != nil {
			return txnTextResponse{}, err
		}
	}
	return t, nil
}

func keyTooLong(n, limit int) error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: "key_too_large",
		Message: fmt.Sprintf("a key of the transaction is %d bytes; the limit is %d", n, limit)}
}

// checkTxn refuses, before anything is proposed, a key over the limit, a
// caller that may not read what a compare, get or list of either branch
// reads or write what a put or delete of either writes (it cannot know
// which branch runs), and with encoding=text a put whose key or value text
// cannot carry back in its result.
func (s *Server) checkTxn(r *http.Request, t *kvstore.Txn, enc keyEncoding) error {
	for _, c := range t.Compares {
		if len(c.Key) > s.cfg.MaxKeyBytes {
			return keyTooLong(len(c.Key), s.cfg.MaxKeyBytes)
		}
		if err := mayRead(r, c.Key); err != nil {
			return err
		}
	}
	for _, branch := range [][]kvstore.TxnOp{t.Success, t.Failure} {
		for _, op := range branch {
			if len(op.Key) > s.cfg.MaxKeyBytes {
				return keyTooLong(len(op.Key), s.cfg.MaxKeyBytes)
			}
			var err error
			switch op.Kind {
			case kvstore.TxnPut:
				if err = mayWrite(r, op.Key); err == nil && enc == encodeText {
					if _, err = enc.key(op.Key); err == nil {
						_, err = enc.value(op.Key, op.Value)
					}
				}
			case kvstore.TxnDelete:
				err = mayWrite(r, op.Key)
			case kvstore.TxnDeletePrefix:
				err = mayWriteAll(r, op.Key)
			case kvstore.TxnGet:
				err = mayRead(r, op.Key)
			case kvstore.TxnList:
				err = mayReadAll(r, op.Key)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

var (
	compareTargets = map[string]kvstore.CompareTarget{
		wire.TargetValue: kvstore.TargetValue, wire.TargetVersion: kvstore.TargetVersion,
		wire.TargetCreateRevision: kvstore.TargetCreateRevision, wire.TargetModRevision: kvstore.TargetModRevision,
		wire.TargetLease: kvstore.TargetLease,
	}
	compareOps = map[string]kvstore.CompareOp{
		"=": kvstore.CompareEqual, "!=": kvstore.CompareNotEqual, "<": kvstore.CompareLess, ">": kvstore.CompareGreater,
	}
)

// toTxn turns the request into the state machine's transaction, refusing
// what its JSON cannot say unambiguously: an operation with no field or two,
// a compare whose target is unknown or whose value is not in the field of
// its target's name.
func toTxn(req *wire.TxnRequest) (*kvstore.Txn, error) {
	bad := func(format string, args ...any) error {
		return &kvstore.TxnError{Code: "invalid_txn", Message: fmt.Sprintf(format, args...)}
	}
	t := &kvstore.Txn{}
	for i, c := range req.Compare {
		target, ok := compareTargets[c.Target]
		if !ok {
			return nil, bad("compare %d: target %q: use value, version, create_revision, mod_revision or lease", i, c.Target)
		}
		op, ok := compareOps[c.Op]
		if !ok {
			return nil, bad("compare %d: op %q: use =, !=, < or >", i, c.Op)
		}
		kc := kvstore.Compare{Key: c.Key, Target: target, Op: op, Value: c.Value}
		set := map[string]bool{wire.TargetValue: c.Value != nil, wire.TargetVersion: c.Version != nil,
			wire.TargetCreateRevision: c.CreateRevision != nil, wire.TargetModRevision: c.ModRevision != nil,
			wire.TargetLease: c.Lease != nil}
		for name, isSet := range set {
			if isSet != (name == c.Target) {
				return nil, bad("compare %d: a %s compare takes its operand in the field %q, and no other", i, c.Target, c.Target)
			}
		}
		switch {
		case c.Version != nil:
			kc.Number = *c.Version
		case c.CreateRevision != nil:
			kc.Number = *c.CreateRevision
		case c.ModRevision != nil:
			kc.Number = *c.ModRevision
		case c.Lease != nil:
			kc.Number = *c.Lease
		}
		t.Compares = append(t.Compares, kc)
	}
	for _, branch := range []struct {
		name string
		ops  []wire.TxnOp
		to   *[]kvstore.TxnOp
	}{{"success", req.Success, &t.Success}, {"failure", req.Failure, &t.Failure}} {
		for i, op := range branch.ops {
			var k kvstore.TxnOp
			n := 0
			if op.Put != nil {
				n, k = n+1, kvstore.TxnOp{Kind: kvstore.TxnPut, Key: op.Put.Key, Value: op.Put.Value, Lease: op.Put.Lease}
			}
			if op.Delete != nil {
				n, k = n+1, kvstore.TxnOp{Kind: kvstore.TxnDelete, Key: op.Delete.Key}
			}
			if op.DeletePrefix != nil {
				n, k = n+1, kvstore.TxnOp{Kind: kvstore.TxnDeletePrefix, Key: op.DeletePrefix.Prefix}
				if op.DeletePrefix.Limit != 0 {
					return nil, bad("%s operation %d: delete_prefix takes no limit", branch.name, i)
				}
			}
			if op.Get != nil {
				n, k = n+1, kvstore.TxnOp{Kind: kvstore.TxnGet, Key: op.Get.Key}
			}
			if op.List != nil {
				limit := op.List.Limit
				if limit == 0 {
					limit = kvstore.DefaultTxnListLimit
				}
				n, k = n+1, kvstore.TxnOp{Kind: kvstore.TxnList, Key: op.List.Prefix, Limit: limit}
			}
			if n != 1 {
				return nil, bad("%s operation %d: give exactly one of put, delete, delete_prefix, get or list", branch.name, i)
			}
			*branch.to = append(*branch.to, k)
		}
	}
	return t, nil
}

// fromTxnResult is the answer's JSON.
func fromTxnResult(res kvstore.TxnResult, revision uint64) wire.TxnResponse {
	out := wire.TxnResponse{Succeeded: res.Succeeded, Revision: revision, Results: make([]wire.TxnOpResult, len(res.Results))}
	for i, r := range res.Results {
		switch r.Kind {
		case kvstore.TxnPut:
			out.Results[i].Put = &wire.TxnPutResult{KV: toWireKV(r.KV), Created: r.Created}
		case kvstore.TxnDelete:
			out.Results[i].Delete = &wire.TxnDeleteResult{Deleted: r.Deleted}
		case kvstore.TxnDeletePrefix:
			out.Results[i].DeletePrefix = &wire.TxnDeleteResult{Deleted: r.Deleted}
		case kvstore.TxnGet:
			get := &wire.TxnGetResult{Found: r.Found}
			if r.Found {
				kv := toWireKV(r.KV)
				get.KV = &kv
			}
			out.Results[i].Get = get
		case kvstore.TxnList:
			list := &wire.TxnListResult{KVs: make([]wire.KeyValue, len(r.KVs)), More: r.More}
			for j, kv := range r.KVs {
				list.KVs[j] = toWireKV(kv)
			}
			out.Results[i].List = list
		}
	}
	return out
}

func toWireKV(kv kvstore.KeyValue) wire.KeyValue {
	return wire.KeyValue{Key: kv.Key, Value: kv.Value, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version, Lease: kv.Lease}
}
