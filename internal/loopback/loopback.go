// Package loopback tells whether a host or address is on the loopback
// interface. Development conveniences (plain http to a source hospital,
// change notifications to a local receiver, the insecure server switches,
// the load generator) are allowed there and nowhere else, so every place
// that asks must get the same answer.
package loopback

import (
	"net"
	"net/netip"
	"strings"
)

// Host reports whether host (a name or an IP literal, no port) is on the
// loopback interface: "localhost" and names under ".localhost" (RFC 6761
// 6.3 reserves them for loopback), or a loopback IP, IPv4-mapped
// addresses included. Any other name is not, whatever it resolves to: a
// resolver's answer can change.
func Host(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return err == nil && a.Unmap().IsLoopback()
}

// Addr is Host for a host:port address, as given to listen or dial.
func Addr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && Host(host)
}
