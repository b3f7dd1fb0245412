package auth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// ForwardConfig says where to ask and what to pass.
type ForwardConfig struct {
	URL string
	// ForwardHeaders are copied from the client's request to the auth
	// service's.
	ForwardHeaders []string
	// CopyHeaders are read from the auth service's answer into the claims,
	// named in lower case with "-" as "_" (X-User-Id: auth.claims.x_user_id).
	CopyHeaders []string
	CacheTTL    time.Duration // 0: ask every time
	Timeout     time.Duration
	// StripQuery are query parameters left out of X-Forwarded-Uri: tickets
	// and tokens are not the auth service's to see.
	StripQuery []string
	HTTP       *http.Client
}

// Forward asks an auth service about each request, as nginx's
// auth_request does: 2xx lets it in, 401 and 403 are passed on, anything
// else means the service cannot say now.
type Forward struct {
	cfg ForwardConfig

	mu    sync.Mutex
	cache map[[sha256.Size]byte]forwardAnswer
}

var _ Authenticator = (*Forward)(nil)

type forwardAnswer struct {
	id      *Identity
	err     error
	expires time.Time
}

// forwardCacheLimit bounds the answers remembered.
const forwardCacheLimit = 10_000

// NewForward asks the service at cfg.URL. Redirects are not followed: a
// service that redirects to a login page has not said yes.
func NewForward(cfg ForwardConfig) *Forward {
	hc := *cfg.HTTP
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cfg.HTTP = &hc
	return &Forward{cfg: cfg, cache: map[[sha256.Size]byte]forwardAnswer{}}
}

// Authenticate asks the service, or remembers its answer for the same
// forwarded headers within the cache TTL.
func (f *Forward) Authenticate(r *http.Request) (*Identity, error) {
	key := f.cacheKey(r)
	if f.cfg.CacheTTL > 0 {
		f.mu.Lock()
		a, ok := f.cache[key]
		f.mu.Unlock()
		if ok && time.Now().Before(a.expires) {
			return a.id, a.err
		}
	}
	id, err := f.ask(r)
	if f.cfg.CacheTTL > 0 && err != ErrUnavailable {
		f.remember(key, forwardAnswer{id, err, time.Now().Add(f.cfg.CacheTTL)})
	}
	return id, err
}

func (f *Forward) remember(key [sha256.Size]byte, a forwardAnswer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.cache) >= forwardCacheLimit {
		now := time.Now()
		for k, v := range f.cache {
			if now.After(v.expires) {
				delete(f.cache, k)
			}
		}
		if len(f.cache) >= forwardCacheLimit {
			clear(f.cache)
		}
	}
	f.cache[key] = a
}

// cacheKey covers all the service is told: it may decide by path.
func (f *Forward) cacheKey(r *http.Request) [sha256.Size]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", r.Method, f.forwardedURI(r))
	for _, name := range f.cfg.ForwardHeaders {
		for _, v := range r.Header.Values(name) {
			fmt.Fprintf(h, "%s\x00%s\x00", name, v)
		}
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

func (f *Forward) ask(r *http.Request) (*Identity, error) {
	ctx, cancel := context.WithTimeout(r.Context(), f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.cfg.URL, nil)
	if err != nil {
		return nil, ErrUnavailable
	}
	for _, name := range f.cfg.ForwardHeaders {
		for _, v := range r.Header.Values(name) {
			req.Header.Add(name, v)
		}
	}
	req.Header.Set("X-Forwarded-Method", r.Method)
	req.Header.Set("X-Forwarded-Uri", f.forwardedURI(r))
	resp, err := f.cfg.HTTP.Do(req)
	if err != nil {
		return nil, ErrUnavailable
	}
	// Drained, so the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		claims := map[string]any{}
		for _, name := range f.cfg.CopyHeaders {
			if v := resp.Header.Get(name); v != "" {
				claims[ClaimName(name)] = v
			}
		}
		return &Identity{Claims: claims}, nil
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, &Error{Reason: "denied by the auth service", Status: http.StatusUnauthorized}
	case resp.StatusCode == http.StatusForbidden:
		return nil, &Error{Reason: "forbidden by the auth service", Status: http.StatusForbidden}
	}
	return nil, ErrUnavailable
}

// forwardedURI is the request's URI without the stripped parameters.
func (f *Forward) forwardedURI(r *http.Request) string {
	u := *r.URL
	if u.RawQuery != "" && len(f.cfg.StripQuery) > 0 {
		q := u.Query()
		for _, p := range f.cfg.StripQuery {
			q.Del(p)
		}
		u.RawQuery = q.Encode()
	}
	return u.RequestURI()
}

// ClaimName is the claim a copied header becomes.
func ClaimName(header string) string {
	return strings.ReplaceAll(strings.ToLower(header), "-", "_")
}

// Challenge is the usual one: the credentials forwarded by default are a
// bearer token or a cookie.
func (f *Forward) Challenge() string { return `Bearer realm="ssegate"` }
