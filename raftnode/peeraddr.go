package raftnode

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// resolveTimeout bounds the name lookups of one membership request.
const resolveTimeout = 2 * time.Second

// peerAddr is where a peer URL leads: its port, its host as written
// (lower case, without a final dot), and the addresses the host stands for.
type peerAddr struct {
	url   string
	host  string
	port  uint16
	addrs []netip.Addr
}

// sameEndpoint reports whether a and b reach the same listener: the same
// port, and the same host name or an address in common.
func (a peerAddr) sameEndpoint(b peerAddr) bool {
	if a.port != b.port {
		return false
	}
	if a.host == b.host {
		return true
	}
	for _, x := range a.addrs {
		if slices.Contains(b.addrs, x) {
			return true
		}
	}
	return false
}

// endpoint names the address a and b share, for messages.
func (a peerAddr) endpoint(b peerAddr) string {
	for _, x := range a.addrs {
		if slices.Contains(b.addrs, x) {
			return netip.AddrPortFrom(x, a.port).String()
		}
	}
	return net.JoinHostPort(a.host, strconv.Itoa(int(a.port)))
}

// literalPeerAddr reads a valid peer URL without looking its host up: an IP
// address in any spelling the C library's inet_aton takes ("127.1",
// "127.0.0.01", "0x7f.1") or IPv6 (an IPv4-mapped one as its IPv4 address)
// gets that address; a name gets none.
func literalPeerAddr(peerURL string) (peerAddr, error) {
	u, err := url.Parse(peerURL)
	if err != nil {
		return peerAddr{}, err
	}
	port, err := strconv.ParseUint(u.Port(), 10, 16)
	if err != nil {
		return peerAddr{}, err
	}
	a := peerAddr{url: peerURL, host: strings.TrimSuffix(strings.ToLower(u.Hostname()), "."), port: uint16(port)}
	if ip, ok := literalIP(a.host); ok {
		a.addrs = []netip.Addr{ip}
	}
	return a, nil
}

func literalIP(host string) (netip.Addr, bool) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap().WithZone(""), true
	}
	return parseInetAton(host)
}

// parseInetAton parses IPv4 the way inet_aton does, which is how many
// programs (curl, ping, glibc's resolver) read a host: one to four parts,
// each decimal, octal with a leading 0 or hex with 0x, the last part
// filling the bytes the others leave.
func parseInetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i, p := range parts {
		base := 10
		switch {
		case len(p) > 2 && (p[:2] == "0x" || p[:2] == "0X"):
			p, base = p[2:], 16
		case len(p) > 1 && p[0] == '0':
			p, base = p[1:], 8
		}
		if p == "" || strings.ContainsAny(p, "+-_") {
			return netip.Addr{}, false
		}
		last := i == len(parts)-1
		bits := 8
		if last {
			bits = 8 * (4 - i)
		}
		v, err := strconv.ParseUint(p, base, bits)
		if err != nil {
			return netip.Addr{}, false
		}
		if !last {
			b[i] = byte(v)
			continue
		}
		for j := 3; j >= i; j-- {
			b[j] = byte(v)
			v >>= 8
		}
	}
	return netip.AddrFrom4(b), true
}

// resolvePeerAddr reads a valid peer URL and looks its host up when it is
// a name. A name that does not resolve keeps no address: it is compared as
// written (a member may be added before its name is published).
func resolvePeerAddr(ctx context.Context, peerURL string) (peerAddr, error) {
	a, err := literalPeerAddr(peerURL)
	if err != nil || len(a.addrs) > 0 {
		return a, err
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", a.host)
	if err != nil {
		return a, nil
	}
	for _, ip := range ips {
		a.addrs = append(a.addrs, ip.Unmap().WithZone(""))
	}
	return a, nil
}

// checkPeerAddrs refuses peer URLs for member id that reach the same
// address as each other, or as another member's peer URL under another
// spelling ("127.1", "localhost", "127.0.0.01" for 127.0.0.1). It runs
// before a change is proposed, never when one is applied: name lookups
// can answer differently on each replica, and applying must decide alike
// everywhere (the table's own check compares URLs as written).
func (n *Node) checkPeerAddrs(ctx context.Context, id uint64, peerURLs []string) error {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	resolve := func(urls []string) ([]peerAddr, error) {
		out := make([]peerAddr, 0, len(urls))
		for _, u := range urls {
			a, err := resolvePeerAddr(ctx, u)
			if err != nil {
				return nil, fmt.Errorf("%w %s: %w", ErrInvalidPeerURL, u, err)
			}
			out = append(out, a)
		}
		return out, nil
	}
	given, err := resolve(peerURLs)
	if err != nil {
		return err
	}
	for i, a := range given {
		for _, b := range given[:i] {
			if a.sameEndpoint(b) {
				return fmt.Errorf("%w %s: listed twice, as %s too (both reach %s)", ErrInvalidPeerURL, a.url, b.url, a.endpoint(b))
			}
		}
	}
	for _, m := range n.view.Load().list() {
		if m.ID == id {
			continue
		}
		theirs, err := resolve(m.PeerURLs)
		if err != nil {
			continue // a stored URL this check cannot read: the table's exact check remains
		}
		for _, a := range given {
			for _, b := range theirs {
				if a.sameEndpoint(b) {
					return fmt.Errorf("%w by member %d: %s reaches %s, as its %s does", ErrPeerURLExists, m.ID, a.url, a.endpoint(b), b.url)
				}
			}
		}
	}
	return nil
}
