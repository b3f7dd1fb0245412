// Package config reads ssegate's HCL configuration into checked values.
//
// Every problem is reported as an HCL diagnostic pointing at file:line:col,
// all of them at once, before anything starts. Per-message expressions stay
// unevaluated (see package sources) and are only checked here.
//
// Each kind of block has a file with its type and its decoding: route.go
// (with history), auth.go (auth and ticket), nats.go, listeners.go
// (listen, tls, admin, log), cors.go and page.go; decode.go reads the top
// level, attrs.go reads attribute values through internal/hclattr, and
// load.go turns diagnostics into errors that point at file:line:col.
package config

import (
	"net/netip"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Config is a whole, checked configuration.
type Config struct {
	Listen          string
	ShutdownTimeout time.Duration
	// ShutdownDelay is how long a signalled process keeps serving, not
	// ready, before it shuts down: time for load balancers to stop
	// sending it clients.
	ShutdownDelay time.Duration
	Log           Log
	NATS          NATS
	Routes        []*Route
	// AllowNoRoutes says a config without routes is meant: otherwise it
	// is refused, since an emptied or half-written file looks like one
	// and, reloaded, would end every stream.
	AllowNoRoutes bool
	// Pages are files served as they are on the public listener.
	Pages []*Page

	// TLS, when set, serves HTTPS (HTTP/2 and HTTP/1.1); H2C serves
	// cleartext HTTP/2 beside HTTP/1.1, for a TLS-terminating proxy.
	TLS *TLS
	H2C bool

	// Limits on open streams; 0 is no limit.
	MaxConnections      int
	MaxConnectionsPerIP int
	// MaxStreams bounds the streams held, open or lingering (see
	// DefaultMaxStreams); NewStreamsPerIP bounds how many new streams one
	// client address may make a second (0: no bound).
	MaxStreams      int
	NewStreamsPerIP int
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix

	// Auths are the auth blocks, by name.
	Auths map[string]*Auth
	// CORS is the top-level cors block: the default of routes, and what
	// ticket endpoints answer.
	CORS *CORS

	// Admin, when set, serves health and readiness on a listener of its
	// own.
	Admin *Admin

	// EvalContext holds the functions; per-stream and per-message
	// contexts are its children.
	EvalContext *hcl.EvalContext
}
