package ratelimit

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Proxies are the load balancers and reverse proxies in front of the
// server whose X-Forwarded-For is believed: behind them the peer address
// is theirs, shared by every user, and a budget per address would be one
// budget for all.
type Proxies []netip.Prefix

// ParseProxies reads a comma-separated list of addresses and CIDR
// prefixes ("10.0.0.0/8, 192.0.2.1").
func ParseProxies(v string) (Proxies, error) {
	var out Proxies
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q is neither an address nor a CIDR prefix", f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

func (p Proxies) trusts(host string) bool {
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, pre := range p {
		if pre.Contains(a) {
			return true
		}
	}
	return false
}

// Key is the bucket key of the request's client address: the peer's, or,
// when the peer is a trusted proxy, the nearest address in
// X-Forwarded-For that is not one (the ones further left are the
// client's to write and prove nothing).
func (p Proxies) Key(r *http.Request) string {
	host := r.RemoteAddr
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if len(p) == 0 || !p.trusts(host) {
		return hostKey(host)
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		list := hops[i]
		for list != "" {
			j := strings.LastIndexByte(list, ',')
			hop := strings.TrimSpace(list[j+1:])
			list = list[:max(j, 0)]
			if hop == "" {
				continue
			}
			if !p.trusts(hop) {
				return hostKey(hop)
			}
			host = hop
		}
	}
	return hostKey(host)
}
