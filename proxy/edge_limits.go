package proxy

import (
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/ssegate/ssegate/proxy/config"
)

// limits counts open streams against the config's limits: in all, per
// client address, per route. Every stream takes its slots before it
// starts and gives them back when it ends.
type limits struct {
	maxTotal, maxPerIP int

	mu       sync.Mutex
	total    int
	perIP    map[netip.Addr]int
	perRoute map[*config.Route]int

	// The rate of new streams per address: a token bucket each, kept
	// while it is not full again.
	newPerSec int
	newByIP   map[netip.Addr]*rate.Limiter
}

// maxRateTracked bounds the addresses whose rate of new streams is
// tracked (about 100 bytes each). Past it, buckets that are full again are
// forgotten, and then any: their addresses start afresh.
const maxRateTracked = 100_000

func newLimits(cfg *config.Config) *limits {
	l := &limits{
		perIP:    map[netip.Addr]int{},
		perRoute: map[*config.Route]int{},
	}
	l.update(cfg)
	return l
}

// update takes the limits of a reloaded config; streams open over a
// lowered limit stay, new ones wait until they fit.
func (l *limits) update(cfg *config.Config) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maxTotal, l.maxPerIP = cfg.MaxConnections, cfg.MaxConnectionsPerIP
	if l.newByIP == nil || cfg.NewStreamsPerIP != l.newPerSec {
		l.newPerSec, l.newByIP = cfg.NewStreamsPerIP, map[netip.Addr]*rate.Limiter{}
	}
}

// newStream reports whether ip may make a new stream now: at most
// new_streams_per_ip a second, in bursts of up to four seconds' worth.
// An invalid ip (no address known) is not held to it.
func (l *limits) newStream(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.newPerSec == 0 || !ip.IsValid() {
		return true
	}
	b := l.newByIP[ip]
	if b == nil {
		if len(l.newByIP) >= maxRateTracked {
			l.forgetRates()
		}
		b = rate.NewLimiter(rate.Limit(l.newPerSec), 4*l.newPerSec)
		l.newByIP[ip] = b
	}
	return b.Allow()
}

// forgetRates makes room among the tracked addresses: first those whose
// bucket is full again (a new one would be the same), then any.
func (l *limits) forgetRates() {
	now := time.Now()
	for ip, b := range l.newByIP {
		if b.TokensAt(now) >= float64(b.Burst()) {
			delete(l.newByIP, ip)
		}
	}
	for ip := range l.newByIP {
		if len(l.newByIP) < maxRateTracked*9/10 {
			break
		}
		delete(l.newByIP, ip)
	}
}

// refusal is why a stream was not taken, and the status for a request
// that is not an EventSource.
type refusal struct {
	status int
	reason string
}

func (r *refusal) Error() string { return r.reason }

// acquire takes a slot of each limit for a stream of rt from ip, or none
// and says which limit is full. ip is as limitKey gives it; an invalid one
// (no address known) is not held to the per-address limit.
func (l *limits) acquire(rt *config.Route, ip netip.Addr) (giveBack func(), refused *refusal) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.maxTotal > 0 && l.total >= l.maxTotal:
		return nil, &refusal{http.StatusServiceUnavailable, "server at max_connections"}
	case rt.MaxClients > 0 && l.perRoute[rt] >= rt.MaxClients:
		return nil, &refusal{http.StatusServiceUnavailable, "route at max_clients"}
	case l.maxPerIP > 0 && ip.IsValid() && l.perIP[ip] >= l.maxPerIP:
		return nil, &refusal{http.StatusTooManyRequests, "too many streams from your address (max_connections_per_ip)"}
	}
	l.total++
	l.perRoute[rt]++
	if ip.IsValid() {
		l.perIP[ip]++
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.total--
		// Gone when none are left, so a route a reload replaced is not
		// kept alive by its entry.
		if l.perRoute[rt]--; l.perRoute[rt] == 0 {
			delete(l.perRoute, rt)
		}
		if !ip.IsValid() {
			return
		}
		if l.perIP[ip]--; l.perIP[ip] == 0 {
			delete(l.perIP, ip)
		}
	}, nil
}

// clientIP is the address of the client: the peer's, or, when the peer is
// a trusted proxy, the nearest address in X-Forwarded-For that is not
// one. Only trusted proxies may speak for a client: anyone can send the
// header. It is invalid when no address can be known.
func clientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	ip = ip.Unmap()
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0 && isTrusted(ip, trusted); i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			// A trusted proxy passed on what it could not read: the client
			// is unknown, not the proxy.
			return netip.Addr{}
		}
		ip = hop.Unmap()
	}
	return ip
}

func isTrusted(ip netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// limitKey is what the per-address limit counts: the address, or for
// IPv6 its /64, which one client usually holds whole.
func limitKey(ip netip.Addr) netip.Addr {
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// acceptsEventStream reports whether the request names text/event-stream
// in Accept, as EventSource does: such a client must never see an error
// status, after which it would not reconnect.
func acceptsEventStream(r *http.Request) bool { return accepts(r, "text/event-stream") }

// accepts reports whether r's Accept header names the media type mt
// (parameters and quality aside).
func accepts(r *http.Request, mt string) bool {
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			t, _, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(t), mt) {
				return true
			}
		}
	}
	return false
}

// jitter spreads d over [d/2, 3d/2), so clients sent away together do not
// come back together.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d+1)
}
