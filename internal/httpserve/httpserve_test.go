package httpserve

import (
	"net"
	"testing"
)

func TestURLAndLoopback(t *testing.T) {
	for _, tt := range []struct {
		addr     net.Addr
		url      string
		loopback bool
	}{
		{nil, "", false},
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8472}, "http://127.0.0.1:8472", true},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 1}, "http://[::1]:1", true},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 8473}, "http://127.0.0.1:8473", false},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 2}, "http://127.0.0.1:2", false},
		{&net.TCPAddr{Port: 3}, "http://127.0.0.1:3", false},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 4}, "http://10.0.0.5:4", false},
		{&net.UnixAddr{Name: "/run/s.sock", Net: "unix"}, "http:///run/s.sock", false},
	} {
		if got := URL(tt.addr); got != tt.url {
			t.Errorf("URL(%v) = %q, want %q", tt.addr, got, tt.url)
		}
		if tt.addr != nil {
			if got := IsLoopback(tt.addr); got != tt.loopback {
				t.Errorf("IsLoopback(%v) = %v, want %v", tt.addr, got, tt.loopback)
			}
		}
	}
}
