//go:build unix

package robustness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/raftkv/raftkv/client"
)

// Check limits.
const (
	// checkTimeout bounds porcupine: a history it cannot decide in time
	// fails like one it finds illegal, since neither was shown linearizable.
	checkTimeout = 30 * time.Second
	// convergeTimeout is how long the members may take to agree once the
	// faults healed and the clients stopped.
	convergeTimeout = 20 * time.Second
	// finalReadTimeout bounds the final reads of one member.
	finalReadTimeout = 30 * time.Second
)

// converge waits until every member has applied the same index and holds
// the same revision and number of keys, and then compares what they hold:
// the state hash of /v1/status?hash=true, and every key with its value,
// create and mod revision and version, listed page by page from each
// member's local state (which also checks the hash). It returns what they
// hold.
func converge(ctx context.Context, c *cluster) (time.Duration, listing, error) {
	start := time.Now()
	var statuses []client.Status
	err := poll(ctx, convergeTimeout, func() error {
		statuses = statuses[:0]
		for _, n := range c.members() {
			if !n.running() {
				return permanent(fmt.Errorf("%s is not running", n.name()))
			}
			st, err := c.status(ctx, n)
			if err != nil {
				return err
			}
			statuses = append(statuses, st)
		}
		for _, st := range statuses[1:] {
			if st.AppliedIndex != statuses[0].AppliedIndex || st.Revision != statuses[0].Revision || st.Keys != statuses[0].Keys {
				return fmt.Errorf("members disagree: %s", describeStatuses(statuses))
			}
		}
		return nil
	})
	took := time.Since(start)
	if err != nil {
		return took, listing{}, fmt.Errorf("no convergence within %v: %w", convergeTimeout, err)
	}
	var firstHash string
	for i, n := range c.members() {
		hash, rev, err := stateHash(ctx, c, n)
		switch {
		case err != nil:
			return took, listing{}, err
		case rev != statuses[i].Revision:
			return took, listing{}, fmt.Errorf("%s hashed revision %d, its status said %d", n.name(), rev, statuses[i].Revision)
		case i == 0:
			firstHash = hash
		case hash != firstHash:
			return took, listing{}, fmt.Errorf("members hold different data at applied index %d: state hash %s on %s, %s on %s",
				statuses[i].AppliedIndex, firstHash, c.members()[0].name(), hash, n.name())
		}
	}
	var first []client.KV
	var firstName string
	for i, n := range c.members() {
		kvs, err := listAll(ctx, c, n, statuses[i].Revision)
		if err != nil {
			return took, listing{}, err
		}
		if i == 0 {
			first, firstName = kvs, n.name()
			continue
		}
		if d := diffListings(first, kvs); d != "" {
			return took, listing{}, fmt.Errorf("%s and %s hold different data at applied index %d: %s", firstName, n.name(), statuses[i].AppliedIndex, d)
		}
	}
	return took, listing{rev: statuses[0].Revision, kvs: first}, nil
}

// listing is a member's whole store at one revision.
type listing struct {
	rev uint64
	kvs []client.KV
}

// stateHash asks n for the hash of its store and the revision it covers.
// The client package does not read these fields of /v1/status yet.
func stateHash(ctx context.Context, c *cluster, n *node) (string, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.clientURL()+"/v1/status?hash=true", nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("state hash of %s: %w", n.name(), err)
	}
	defer resp.Body.Close()
	var st struct {
		StateHash    string `json:"state_hash"`
		HashRevision uint64 `json:"hash_revision"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK || st.StateHash == "" {
		return "", 0, fmt.Errorf("state hash of %s: %s, %v", n.name(), resp.Status, err)
	}
	return st.StateHash, st.HashRevision, nil
}

func describeStatuses(sts []client.Status) string {
	var parts []string
	for _, st := range sts {
		parts = append(parts, fmt.Sprintf("n%d: applied %d, revision %d, %d keys, %s of %d in term %d",
			st.ID, st.AppliedIndex, st.Revision, st.Keys, st.RaftState, st.Leader, st.Term))
	}
	return strings.Join(parts, "; ")
}

// listAll lists every key of n from its local state, in small pages, and
// checks that each page was read at the member's revision.
func listAll(ctx context.Context, c *cluster, n *node, revision uint64) ([]client.KV, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var kvs []client.KV
	for page, err := range c.api(n.clientURL()).Pages(ctx, nil, client.ListOptions{Limit: 3, Consistency: client.Serializable}) {
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", n.name(), err)
		}
		if page.Revision != revision {
			return nil, fmt.Errorf("list %s: a page at revision %d, its status said %d", n.name(), page.Revision, revision)
		}
		kvs = append(kvs, page.KVs...)
	}
	return kvs, nil
}

func diffListings(a, b []client.KV) string {
	describe := func(kv client.KV) string {
		return fmt.Sprintf("%s=%q (create %d, mod %d, version %d)", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version)
	}
	for i := range max(len(a), len(b)) {
		switch {
		case i >= len(a):
			return "only the second has " + describe(b[i])
		case i >= len(b):
			return "only the first has " + describe(a[i])
		case !bytes.Equal(a[i].Key, b[i].Key) || !bytes.Equal(a[i].Value, b[i].Value) ||
			a[i].CreateRevision != b[i].CreateRevision || a[i].ModRevision != b[i].ModRevision || a[i].Version != b[i].Version:
			return describe(a[i]) + " versus " + describe(b[i])
		}
	}
	return ""
}

// finalReads reads every key on every member, linearizably, and records the
// reads in the history under client ids after the workload's: porcupine then
// checks that the end state agrees with every acknowledged write.
func finalReads(ctx context.Context, c *cluster, rec *recorder, keys []string) error {
	for _, n := range c.members() {
		api := c.api(n.clientURL())
		for _, key := range keys {
			in := kvInput{Kind: opGet, Key: key}
			err := poll(ctx, finalReadTimeout, func() error {
				rctx, cancel := context.WithTimeout(ctx, opTimeout)
				defer cancel()
				call := rec.now()
				kv, err := api.Get(rctx, []byte(key), client.Linearizable)
				ret := rec.now()
				var out kvOutput
				switch o := classify(in, err); o.status {
				case stOK:
					out = kvOutput{Status: stOK, Value: string(kv.Value), Rev: kv.ModRevision, CreateRev: kv.CreateRevision, Version: kv.Version, StoreRev: kv.Revision}
				case stNotFound:
					out = kvOutput{Status: stNotFound}
				case outcomeUnexpected:
					return permanent(fmt.Errorf("final read of %s on %s: %w", key, n.name(), err))
				default:
					return fmt.Errorf("final read of %s on %s: %w", key, n.name(), err)
				}
				meta := opMeta{Node: n.name(), Err: "final read"}
				rec.add(porcupine.Operation{ClientId: workloadClients + n.slot, Input: in, Call: call, Output: out, Return: ret, Metadata: meta})
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// checkLinearizable checks the history with the model. A history porcupine
// could not decide within checkTimeout counts as a failure. It stops at the
// first partition that is not linearizable; the report computes the
// visualization, which explores every partition, only when one is needed.
func checkLinearizable(ops []porcupine.Operation) (porcupine.CheckResult, time.Duration) {
	prepareHistory(ops)
	start := time.Now()
	res := porcupine.CheckOperationsTimeout(kvModel, ops, checkTimeout)
	return res, time.Since(start)
}

// lostWrites returns the acknowledged writes that the final reads (client
// ids from workloadClients on) do not show although no other write to their
// key could have come after them: every write that may have taken effect
// (acknowledged or of unknown outcome) ended before they began. A
// transaction writes each key its branch puts or deletes.
func lostWrites(ops []porcupine.Operation) []string {
	byKey := map[string][]keyWrite{}
	finals := map[string][]porcupine.Operation{}
	for _, op := range ops {
		if op.ClientId >= workloadClients {
			k := op.Input.(kvInput).Key
			finals[k] = append(finals[k], op)
			continue
		}
		for _, w := range writesOf(op) {
			byKey[w.key] = append(byKey[w.key], w)
		}
	}
	var lost []string
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		writes := byKey[key]
		for i, a := range writes {
			if !a.acked {
				continue
			}
			last := true
			for j, b := range writes {
				if j != i && b.op.Return >= a.op.Call {
					last = false
					break
				}
			}
			if !last {
				continue
			}
			for _, f := range finals[key] {
				out := f.Output.(kvOutput)
				var ok bool
				if a.put {
					ok = out.Status == stOK && out.Value == a.value
				} else {
					ok = out.Status == stNotFound
				}
				if !ok {
					lost = append(lost, fmt.Sprintf("%s (key %s) acknowledged at %v (%v), but the final read on %v gave %s",
						describeOperation(a.op.Input, a.op.Output), key, time.Duration(a.op.Return), a.op.Metadata, f.Metadata, describeOutput(f.Input.(kvInput), out)))
				}
			}
		}
	}
	return lost
}

// keyWrite is a write of one key that an operation made or may have made.
type keyWrite struct {
	op    porcupine.Operation
	key   string
	put   bool // else a delete
	value string
	acked bool // acknowledged, else of unknown outcome
}

// writesOf returns the writes op made (acknowledged) or may have made
// (unknown outcome): for a transaction, the puts and deletes of the branch
// that ran, or of either branch when the outcome is unknown.
func writesOf(op porcupine.Operation) []keyWrite {
	in, out := op.Input.(kvInput), op.Output.(kvOutput)
	if out.Status != stOK && out.Status != stUnknown {
		return nil
	}
	acked := out.Status == stOK
	switch in.Kind {
	case opPut, opDelete:
		return []keyWrite{{op: op, key: in.Key, put: in.Kind == opPut, value: in.Value, acked: acked}}
	case opTxn:
		branches := [][]txnOp{in.Txn.branch(out.Succeeded)}
		if !acked {
			branches = [][]txnOp{in.Txn.Success, in.Txn.Failure}
		}
		var writes []keyWrite
		for _, ops := range branches {
			for _, t := range ops {
				if t.Kind != opGet {
					writes = append(writes, keyWrite{op: op, key: t.Key, put: t.Kind == opPut, value: t.Value, acked: acked})
				}
			}
		}
		return writes
	}
	return nil
}

// acknowledgedWrite reports whether an operation changed the store and said
// so: an acknowledged put or delete, or a transaction whose branch put a
// key or deleted one that existed.
func acknowledgedWrite(in kvInput, out kvOutput) bool {
	switch {
	case out.Status != stOK || in.Kind == opGet:
		return false
	case in.Kind != opTxn:
		return true
	}
	for i, op := range in.Txn.branch(out.Succeeded) {
		if op.Kind == opPut || (op.Kind == opDelete && out.Results[i].Deleted > 0) {
			return true
		}
	}
	return false
}

// historyStats counts a history's operations.
type historyStats struct {
	ops, definite, unknown, acknowledgedWrites int
	txns                                       int // transactions, of any outcome
}

func countOps(ops []porcupine.Operation) historyStats {
	var s historyStats
	for _, op := range ops {
		if op.ClientId >= workloadClients {
			continue // final reads
		}
		s.ops++
		in, out := op.Input.(kvInput), op.Output.(kvOutput)
		if in.Kind == opTxn {
			s.txns++
		}
		switch {
		case out.Status == stUnknown:
			s.unknown++
		default:
			s.definite++
			if acknowledgedWrite(in, out) {
				s.acknowledgedWrites++
			}
		}
	}
	return s
}

// failoverTime is, for a fault that killed the leader at killed, how long
// until the first write sent after the kill was acknowledged.
func failoverTime(ops []porcupine.Operation, killed int64) (time.Duration, error) {
	first := int64(math.MaxInt64)
	for _, op := range ops {
		in, out := op.Input.(kvInput), op.Output.(kvOutput)
		if op.ClientId < workloadClients && acknowledgedWrite(in, out) && op.Call >= killed {
			first = min(first, op.Return)
		}
	}
	if first == math.MaxInt64 {
		return 0, errors.New("no write was acknowledged after the leader was killed")
	}
	return time.Duration(first - killed), nil
}
