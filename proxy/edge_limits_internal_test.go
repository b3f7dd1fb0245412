package proxy

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/ssegate/ssegate/proxy/config"
)

func TestClientIP(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}
	tests := []struct {
		remote, xff, want string
	}{
		{"192.0.2.1:5000", "", "192.0.2.1"},
		{"192.0.2.1:5000", "198.51.100.7", "192.0.2.1"},             // untrusted peer: header ignored
		{"10.1.2.3:5000", "198.51.100.7", "198.51.100.7"},           // trusted proxy speaks for the client
		{"10.1.2.3:5000", "198.51.100.7, 10.9.9.9", "198.51.100.7"}, // through two trusted proxies
		{"10.1.2.3:5000", "6.6.6.6, 198.51.100.7", "198.51.100.7"},  // the client cannot spoof past it
		{"10.1.2.3:5000", "garbage, 198.51.100.7", "198.51.100.7"},  // nearest untrusted hop wins
		{"10.1.2.3:5000", "not-an-ip", "invalid IP"},                // unreadable: unknown, not the proxy
		{"[::ffff:127.0.0.1]:80", "2001:db8::1", "2001:db8::1"},     // mapped IPv4 peer
		{"127.0.0.1:80", "10.0.0.5, 10.0.0.6", "10.0.0.5"},          // all trusted: the farthest
	}
	tests = append(tests, struct{ remote, xff, want string }{"@", "", "invalid IP"}) // a unix socket
	for _, tt := range tests {
		r := &http.Request{RemoteAddr: tt.remote, Header: http.Header{}}
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := clientIP(r, trusted); got.String() != tt.want {
			t.Errorf("clientIP(%s, XFF %q) = %s, want %s", tt.remote, tt.xff, got, tt.want)
		}
	}
}

func TestLimitKeyGroupsIPv6By64(t *testing.T) {
	t.Parallel()
	a, b := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")
	if limitKey(a) != limitKey(b) {
		t.Error("two addresses of one /64 counted apart")
	}
	if v4 := netip.MustParseAddr("192.0.2.1"); limitKey(v4) != v4 {
		t.Error("IPv4 address changed")
	}
}

// A route's slot count goes when its last stream does, so routes a reload
// replaced leave nothing behind; the limits hold meanwhile.
func TestLimitsForgetIdleRoutes(t *testing.T) {
	t.Parallel()
	rt := &config.Route{Path: "/r", MaxClients: 2}
	l := newLimits(&config.Config{})
	var releases []func()
	for range 2 {
		release, refused := l.acquire(rt, netip.Addr{})
		if refused != nil {
			t.Fatal(refused.reason)
		}
		releases = append(releases, release)
	}
	if _, refused := l.acquire(rt, netip.Addr{}); refused == nil {
		t.Fatal("a third stream over max_clients = 2")
	}
	for _, release := range releases {
		release()
	}
	if n := len(l.perRoute); n != 0 || l.total != 0 {
		t.Fatalf("after every stream ended: %d route entries, %d streams", n, l.total)
	}
}
