package provider

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// Redirect policies (follow_redirects).
const (
	// RedirectsOff: a 3xx answer is the call's outcome, a failed call. The
	// default: a job's call goes to its provider's host and nowhere else.
	RedirectsOff = "off"
	// RedirectsSameHost: follow up to MaxRedirects redirects that stay on
	// the base_url's scheme and host; one that leaves it ends the call
	// with the 3xx answer. The provider's auth header is only ever sent
	// to that host.
	RedirectsSameHost = "same_host"
)

// MaxRedirects bounds a chain of same-host redirects.
const MaxRedirects = 5

// ErrPrivateNetwork is matched by the error of a call whose connection was
// refused because it would reach a private, loopback, link-local or
// unspecified address while allow_private_network is off.
var ErrPrivateNetwork = errors.New("refused to connect to a private network address (allow_private_network is off)")

// Blocked ranges beyond what netip.Addr's predicates name.
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network": 0.x dials the local host on Linux
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT; some clouds' metadata lives here
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, and the broadcast address
}

// nat64 carries an IPv4 address in its last 32 bits; a NAT64 gateway
// would forward it there.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// privateAddr reports whether a is an address a provider's call may reach
// only with allow_private_network: loopback, private (RFC 1918, ULA),
// link-local (169.254.169.254 is the cloud metadata service), unspecified,
// multicast, and the reserved ranges above, also when written as an
// IPv4-mapped or NAT64 IPv6 address.
func privateAddr(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if a.Is6() && nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() || !a.IsValid() {
		return true
	}
	for _, p := range blockedPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// checkBaseHost refuses a base_url whose host is a private address written
// out (an IP literal or localhost). A name that resolves to one is caught
// when the call dials (see dialControl): names can change what they
// resolve to after the config was checked.
func checkBaseHost(u *url.URL) error {
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return fmt.Errorf("base_url: %q names the local host; set allow_private_network: true to call it", u.String())
	}
	if a, err := netip.ParseAddr(host); err == nil && privateAddr(a) {
		return fmt.Errorf("base_url: %q is on a private, loopback, link-local or unspecified address; set allow_private_network: true to call it", u.String())
	}
	return nil
}

// dialControl runs after name resolution, just before each connect, with
// the address actually dialled: a name that resolves (or is re-bound) to
// 127.0.0.1, 10.x or 169.254.169.254 is refused here whatever the DNS
// said when the config was loaded.
func dialControl(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse %q (%s)", ErrPrivateNetwork, address, network)
	}
	if privateAddr(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrPrivateNetwork, ap.Addr())
	}
	return nil
}

// checkRedirect returns the client's redirect policy for base.
func checkRedirect(policy string, base *url.URL) func(*http.Request, []*http.Request) error {
	if policy != RedirectsSameHost {
		return func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return func(req *http.Request, via []*http.Request) error {
		if len(via) > MaxRedirects || req.URL.Scheme != base.Scheme || req.URL.Host != base.Host || req.URL.User != nil {
			// The 3xx answer becomes the call's outcome: a failed call.
			return http.ErrUseLastResponse
		}
		return nil
	}
}
