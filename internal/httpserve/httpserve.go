// Package httpserve holds what the HTTP servers of the services share
// about their listeners: the URL a client on the same machine uses, and
// whether an address is loopback only.
package httpserve

import (
	"net"
	"strconv"
)

// URL returns the base URL a client on this machine uses to reach a server
// listening on addr, such as http://127.0.0.1:8472, or "" for nil. A
// server on all interfaces is reached through loopback: Go listens
// dual-stack on an unspecified address, so IPv4 loopback reaches it
// whichever way it was written.
func URL(addr net.Addr) string {
	if addr == nil {
		return ""
	}
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return "http://" + addr.String()
	}
	ip := tcp.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(tcp.Port))
}

// IsLoopback reports whether addr accepts connections from this machine
// only.
func IsLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
