package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/raftkv/raftkv/kvstore"
	"github.com/raftkv/raftkv/raftnode"
	"github.com/raftkv/raftkv/wire"
)

// maxLeaseBodyBytes bounds a grant's JSON body, and a line of a keepalive
// stream.
const maxLeaseBodyBytes = 4 << 10

// serveLeases serves /v1/leases: GET lists the leases, POST grants one.
func (s *Server) serveLeases(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := noParams(r); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	if r.Method == http.MethodPost {
		var req wire.LeaseGrantRequest
		if err := decodeBodyUpTo(w, r, &req, maxLeaseBodyBytes, false, "invalid_lease"); err != nil {
			return err
		}
		if req.TTLMs <= 0 || req.TTLMs > kvstore.MaxLeaseTTL {
			return badRequest("invalid_lease", fmt.Sprintf("ttl_ms must be 1 to %d; it is raised to the server's minimum, %d", int64(kvstore.MaxLeaseTTL), s.cfg.KV.MinLeaseTTL().Milliseconds()))
		}
		if req.ID > kvstore.MaxLeaseID {
			return badRequest("invalid_lease", fmt.Sprintf("id must be 1 to %d, or absent for the server to choose", uint64(kvstore.MaxLeaseID)))
		}
		l, err := s.cfg.KV.Grant(ctx, req.ID, time.Duration(req.TTLMs)*time.Millisecond)
		if err != nil {
			return err
		}
		writeJSON(w, wire.Lease{ID: l.ID, TTLMs: l.TTL})
		return nil
	}
	ls, err := s.cfg.KV.Leases(ctx)
	if err != nil {
		return err
	}
	out := wire.LeaseList{Leases: make([]wire.Lease, len(ls))}
	for i, l := range ls {
		out.Leases[i] = wire.Lease{ID: l.ID, TTLMs: l.TTL}
	}
	writeJSON(w, out)
	return nil
}

// parseLeaseID parses the {id} of /v1/leases/{id}.
func parseLeaseID(raw string) (uint64, error) {
	s, err := url.PathUnescape(raw)
	if err == nil {
		var id uint64
		if id, err = strconv.ParseUint(s, 10, 64); err == nil && id != 0 && id <= kvstore.MaxLeaseID {
			return id, nil
		}
	}
	return 0, badRequest("invalid_lease_id", fmt.Sprintf("lease id %q must be an integer from 1 to %d", raw, uint64(kvstore.MaxLeaseID)))
}

// leaseRequest checks the id of a request to /v1/leases/{id}/... that takes
// no query parameters, and returns it.
func leaseRequest(r *http.Request, rawID string) (uint64, error) {
	id, err := parseLeaseID(rawID)
	if err != nil {
		return 0, err
	}
	q, err := parseQuery(r)
	if err != nil {
		return 0, err
	}
	return id, onlyParams(q)
}

// serveLease serves /v1/leases/{id}: GET shows the lease as its leader
// counts it (so a follower forwards it), DELETE revokes it.
func (s *Server) serveLease(w http.ResponseWriter, r *http.Request, rawID string) error {
	id, err := parseLeaseID(rawID)
	if err != nil {
		return err
	}
	q, err := parseQuery(r)
	if err != nil {
		return err
	}
	var known []string
	if r.Method != http.MethodDelete {
		known = []string{"encoding"}
	}
	if err := onlyParams(q, known...); err != nil {
		return err
	}
	enc, err := encodingParam(q)
	if err != nil {
		return err
	}
	if r.Method == http.MethodDelete {
		return s.revokeLease(w, r, id)
	}
	if forwarded, err := s.forwardToLeader(w, r, 0); forwarded || err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	st, err := s.cfg.KV.TimeToLive(ctx, id)
	if err != nil {
		return err
	}
	out := wire.LeaseStatus{ID: st.ID, TTLMs: st.TTL, RemainingMs: st.Remaining.Milliseconds(), Keys: [][]byte{}}
	for _, k := range st.Keys {
		// Only the keys the caller may read: the names are data too.
		if mayRead(r, []byte(k)) == nil {
			out.Keys = append(out.Keys, []byte(k))
		}
	}
	if enc == encodeBase64 {
		writeJSON(w, out)
		return nil
	}
	text := leaseStatusText{ID: out.ID, TTLMs: out.TTLMs, RemainingMs: out.RemainingMs, Keys: make([]string, len(out.Keys))}
	for i, k := range out.Keys {
		if text.Keys[i], err = enc.key(k); err != nil {
			return err
		}
	}
	writeJSON(w, text)
	return nil
}

// leaseStatusText is wire.LeaseStatus with encoding=text: keys as strings.
type leaseStatusText struct {
	ID          uint64   `json:"id"`
	TTLMs       int64    `json:"ttl_ms"`
	RemainingMs int64    `json:"remaining_ms"`
	Keys        []string `json:"keys"`
}

// revokeLease revokes a lease. Its keys are deleted with it, so the caller
// must be allowed to write every one of them; keys attached after that check
// and before the revoke applies are deleted too, as a lease's keys are when
// it expires.
func (s *Server) revokeLease(w http.ResponseWriter, r *http.Request, id uint64) error {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	if identityOf(r) != nil {
		info, _, ok := s.cfg.KV.Store().Lease(id)
		if ok {
			for _, k := range info.Keys {
				if err := mayWrite(r, []byte(k)); err != nil {
					return err
				}
			}
		}
	}
	res, revision, err := s.cfg.KV.Revoke(ctx, id)
	if err != nil {
		return err
	}
	setRevision(w.Header(), revision)
	writeJSON(w, wire.LeaseRevoked{Revision: revision, Deleted: len(res.Keys)})
	return nil
}

// serveKeepAlive serves POST /v1/leases/{id}/keepalive: one renewal, by the
// leader.
func (s *Server) serveKeepAlive(w http.ResponseWriter, r *http.Request, rawID string) error {
	id, err := leaseRequest(r, rawID)
	if err != nil {
		return err
	}
	if forwarded, err := s.forwardToLeader(w, r, maxLeaseBodyBytes); forwarded || err != nil {
		return err
	}
	if _, err := readBody(w, r, maxLeaseBodyBytes); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	l, err := s.cfg.KV.KeepAlive(ctx, id)
	if err != nil {
		return err
	}
	writeJSON(w, wire.Lease{ID: l.ID, TTLMs: l.TTL})
	return nil
}

// serveKeepAliveStream serves POST /v1/leases/{id}/keepalive/stream: a
// client holds a lease over one connection. Every line of the request body
// renews the lease once, and the answer is a line of JSON per renewal, a
// wire.Lease, in order; an error ends the stream with a wire.Error line.
// The client, not the server, decides when to renew: a client that hangs
// stops renewing even though its connection stays open, and its lease
// expires as it should. Any member serves the stream; a follower renews
// through the leader.
func (s *Server) serveKeepAliveStream(w http.ResponseWriter, r *http.Request, rawID string) error {
	id, err := leaseRequest(r, rawID)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	// HTTP/1.1 stops reading a request body once the answer begins, unless
	// told otherwise; HTTP/2 streams are duplex already.
	if err := rc.EnableFullDuplex(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	sw := streamWriter{w: w, rc: rc, timeout: s.cfg.WriteTimeout}
	if err := sw.write(nil); err != nil {
		return nil // the client went away
	}
	lines := bufio.NewScanner(r.Body)
	lines.Buffer(make([]byte, 0, 256), maxLeaseBodyBytes)
	for lines.Scan() {
		l, err := s.keepAliveOnce(r, id)
		var line []byte
		if err != nil {
			e := toError(err)
			line, _ = json.Marshal(wire.Error{Error: e.Message, Code: e.Code})
		} else {
			line, _ = json.Marshal(l)
		}
		if werr := sw.write(append(line, '\n')); werr != nil || err != nil {
			return nil
		}
	}
	return nil
}

// keepAliveOnce renews a lease for a keepalive stream: here when this member
// leads, else with one keepalive request to the leader, with the stream's
// credentials.
func (s *Server) keepAliveOnce(r *http.Request, id uint64) (wire.Lease, error) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	if s.cfg.Cluster.IsLeader() {
		l, err := s.cfg.KV.KeepAlive(ctx, id)
		return wire.Lease{ID: l.ID, TTLMs: l.TTL}, err
	}
	target, err := s.leaderURL()
	if err != nil {
		return wire.Lease{}, err
	}
	target = target.JoinPath("v1", "leases", strconv.FormatUint(id, 10), "keepalive")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), nil)
	if err != nil {
		return wire.Lease{}, err
	}
	for _, name := range []string{"Authorization"} {
		if v := r.Header.Get(name); v != "" {
			req.Header.Set(name, v)
		}
	}
	req.Header.Set(forwardedHeader, strconv.FormatUint(s.cfg.Cluster.ID(), 10))
	resp, err := s.forwarder.RoundTrip(req)
	if err != nil {
		return wire.Lease{}, fmt.Errorf("%w: %v", raftnode.ErrNoLeader, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxLeaseBodyBytes))
	if err != nil {
		return wire.Lease{}, fmt.Errorf("%w: %v", raftnode.ErrNoLeader, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e wire.Error
		if json.Unmarshal(body, &e) != nil || e.Code == "" {
			e = wire.Error{Code: "internal", Error: strings.TrimSpace(string(body))}
		}
		return wire.Lease{}, &Error{Status: resp.StatusCode, Code: e.Code, Message: e.Error}
	}
	var l wire.Lease
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&l); err != nil {
		return wire.Lease{}, fmt.Errorf("the leader's keepalive answer: %w", err)
	}
	return l, nil
}
