package proxy

import (
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// Option configures a Server.
type Option func(*Server)

// VerifyRequest sets a check run on every stream request after its path is
// matched; false answers 403, which EventSource does not retry.
func VerifyRequest(fn func(*http.Request) bool) Option {
	return func(s *Server) { s.verify = fn }
}

// OnConnect sets a hook called for each new client before it receives
// anything; events it sends with Client.Send reach that client only, first.
func OnConnect(fn func(*Client)) Option {
	return func(s *Server) { s.onConnect = fn }
}

// WithLogger sets the logger; the default discards.
func WithLogger(l zerolog.Logger) Option {
	return func(s *Server) { s.log = l }
}

// WithNATS makes the Server use nc instead of connecting as the config's
// nats block says. The caller keeps ownership: Shutdown leaves nc open.
func WithNATS(nc *nats.Conn) Option {
	return func(s *Server) { s.given = nc }
}

// WithLeaseTTL sets how long a replica that stopped renewing its lease on
// a fetching source (poll, stream) keeps it before another replica takes
// the source over; the default is lease.DefaultTTL.
func WithLeaseTTL(d time.Duration) Option {
	return func(s *Server) { s.leaseTTL = d }
}

// WithHTTPClient sets the client that polls, upstream streams, key sets
// and forward auth use (to go through a proxy, say). The default gives up
// on an upstream that sends no response head within 30 s.
func WithHTTPClient(hc *http.Client) Option {
	return func(s *Server) { s.http = hc }
}

// WithReloader makes the admin listener answer POST /reload by calling
// reload, which reads the config again and calls Reload; ssegate's command
// gives one that reads its config file.
func WithReloader(reload func() error) Option {
	return func(s *Server) { s.reloader = reload }
}
