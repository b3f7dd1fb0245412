package proxy

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/ssegate/ssegate/proxy/config"
)

// allowOrigin adds the CORS headers to an answer for an origin the route
// allows. Any other origin gets none, so its page cannot read the stream.
func (s *Server) allowOrigin(w http.ResponseWriter, r *http.Request, c *config.CORS) bool {
	if c == nil {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	if !originAllowed(c, origin) {
		s.log.Debug().Str("origin", origin).Str("path", r.URL.Path).Msg("origin not allowed")
		return false
	}
	if slices.Contains(c.AllowOrigins, "*") && !c.AllowCredentials {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	if c.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	return true
}

// withCORS adds c's headers to h's answers.
func (s *Server) withCORS(c *config.CORS, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.allowOrigin(w, r, c)
		h.ServeHTTP(w, r)
	})
}

// preflight answers OPTIONS for a path: the methods and headers a page may
// use on it.
func (s *Server) preflight(c *config.CORS, methods ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.allowOrigin(w, r, c) {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Methods", strings.Join(methods, ", "))
		h.Set("Access-Control-Allow-Headers", strings.Join(s.allowedHeaders(), ", "))
		if c.MaxAge > 0 {
			h.Set("Access-Control-Max-Age", strconv.Itoa(int(c.MaxAge.Seconds())))
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// originAllowed matches origin against the allowed ones: exact, "*", or
// scheme://*.domain[:port] for any subdomain of domain.
func originAllowed(c *config.CORS, origin string) bool {
	origin = strings.ToLower(origin)
	for _, a := range c.AllowOrigins {
		switch {
		case a == "*" || a == origin:
			return true
		case strings.Contains(a, "://*."):
			if wildcardMatch(a, origin) {
				return true
			}
		}
	}
	return false
}

func wildcardMatch(pattern, origin string) bool {
	scheme, host, _ := strings.Cut(pattern, "://*.")
	u, err := url.Parse(origin)
	if err != nil || u.Scheme != scheme {
		return false
	}
	// host is "example.com" or "example.com:8443"; the origin must be a
	// subdomain of it, on the same port.
	domain, port, _ := strings.Cut(host, ":")
	return u.Port() == port && strings.HasSuffix(u.Hostname(), "."+domain)
}

// credentialParams are the query parameters that carry credentials.
func credentialParams(cfg *config.Config) []string {
	params := []string{"ticket"}
	for _, a := range cfg.Auths {
		if a.JWT != nil && a.JWT.QueryParam != "" {
			params = append(params, a.JWT.QueryParam)
		}
	}
	return params
}

// allowedHeaders are the request headers a page may send: what
// EventSource and fetch-based SSE clients send, and the headers auth
// blocks read tokens from.
func (s *Server) allowedHeaders() []string {
	headers := []string{"Last-Event-ID", "Authorization", "Cache-Control", "Accept", "Content-Type"}
	for _, a := range s.config().Auths {
		if a.JWT != nil && a.JWT.Header != "" && !slices.Contains(headers, a.JWT.Header) {
			headers = append(headers, a.JWT.Header)
		}
	}
	return headers
}
