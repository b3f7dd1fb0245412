// Package config reads ssegate's HCL configuration into checked values.
//
// Every problem is reported as an HCL diagnostic pointing at file:line:col,
// all of them at once, before anything starts. Per-message expressions stay
// unevaluated (see package sources) and are only checked here.
package config

import (
	"net/netip"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/rs/zerolog"

	"github.com/ssegate/ssegate/proxy/auth"
	"github.com/ssegate/ssegate/sources"
)

// Defaults for settings the config leaves out.
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultShutdownTimeout = 10 * time.Second
	DefaultKeepalive       = 15 * time.Second
	DefaultHistory         = 100
	DefaultLinger          = 5 * time.Minute
	DefaultBuffer          = 256
	DefaultWriteTimeout    = 10 * time.Second
	DefaultNewStreamsPerIP = 50
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

// Admin is the admin block.
type Admin struct {
	Listen    string
	Auth      []string // auth blocks, any of which lets a request in
	AuthRange hcl.Range
}

// Auth is an `auth "KIND" "NAME"` block.
type Auth struct {
	Kind, Name string
	Tokens     []string            // bearer
	JWT        *auth.JWTConfig     // jwt; the proxy sets its HTTP client
	Forward    *auth.ForwardConfig // forward; likewise
	Ticket     *Ticket             // jwt and forward: tickets for browsers
	// Fingerprint is the same for two auth blocks of the same text.
	Fingerprint string
	Range       hcl.Range
}

// Ticket configures the exchange of credentials for a single-use ticket.
type Ticket struct {
	TTL  time.Duration
	Path string // where tickets are issued, by POST
}

// JetStreamHistory configures a route's history in JetStream.
type JetStreamHistory struct {
	// Stream names an existing stream to read; empty: ssegate creates or
	// updates one of its own for the route, with the limits below.
	Stream   string
	MaxMsgs  int64
	MaxAge   time.Duration
	MaxBytes int64
	// Replicas is how many NATS servers of a cluster keep the history: 3
	// survives losing one.
	Replicas int
}

// TLS names the certificate and key files.
type TLS struct {
	CertFile, KeyFile string
}

// CORS says which web origins may open a route's streams from a page.
type CORS struct {
	// AllowOrigins are exact origins ("https://app.example.com"), patterns
	// with a wildcard first label ("https://*.example.com"), or "*".
	AllowOrigins     []string
	AllowCredentials bool
	MaxAge           time.Duration // how long a browser may cache a preflight
}

// Log configures logging.
type Log struct {
	Level  zerolog.Level
	Format string // "console" or "json"
}

// NATS configures the NATS connection: an external server or cluster at URL, or
// an embedded server when URL is empty.
type NATS struct {
	URL       string
	Name      string
	CredsFile string
	Embedded  Embedded
}

// Embedded configures the in-process nats-server.
type Embedded struct {
	// Listen is the TCP address other processes publish to; empty means
	// in-process connections only.
	Listen string
	// StoreDir enables JetStream, stored in this directory.
	StoreDir string
	// ServerName names the server; unique within a cluster.
	ServerName string
	// Cluster, when set, joins the embedded servers of several ssegate
	// replicas into one NATS cluster: nats-server's own clustering.
	Cluster *EmbeddedCluster
}

// EmbeddedCluster configures the embedded server's cluster routes.
type EmbeddedCluster struct {
	Name   string
	Listen string   // host:port other nodes connect to
	Routes []string // nats://host:port of the other nodes
}

// Page is a `page "PATH" { file = "..." }` block: a file served as it is,
// such as a page whose script opens the routes' streams from their own
// origin, with no CORS to set up.
type Page struct {
	Path        string // "/" serves the root alone, not every path under it
	ContentType string
	Body        []byte
	Range       hcl.Range
}

// Pattern is the ServeMux pattern that serves the page.
func (p *Page) Pattern() string {
	if p.Path == "/" {
		return "GET /{$}"
	}
	return "GET " + p.Path
}

// Route maps one URL path pattern to its sources.
type Route struct {
	// Path is a net/http ServeMux path pattern, such as /stocks/{symbol}.
	Path string
	// Params are the names of the path's wildcards, in order.
	Params []string

	Keepalive time.Duration // 0: no keepalive comments
	Retry     time.Duration // 0: no retry line
	History   int           // events kept per stream for resume (memory store)
	// JetStream, when set, keeps the history in a JetStream stream instead
	// of memory: event ids are stream sequences, valid on every replica
	// and across restarts.
	JetStream    *JetStreamHistory
	Linger       time.Duration // how long a stream outlives its last client
	Buffer       int           // frames queued per client before it is dropped
	WriteTimeout time.Duration

	// Auth names the auth blocks a client must pass one of; none: open.
	Auth []string
	// Allow, when set, is evaluated per request with path and auth in
	// scope; false answers 403.
	Allow hcl.Expression

	MaxClients        int           // streams open on the route at once; 0: no limit
	MaxStreams        int           // streams held, open or lingering; 0: only the global bound
	MaxStreamDuration time.Duration // a stream's lifetime, before jitter; 0: unlimited
	CORS              *CORS         // nil: no cross-origin access

	Sources     []sources.Spec
	SourceKinds []string // each source's kind, as in its block

	// Fingerprint is the same for two routes decoded from the same text
	// (the route block, the auth blocks it names, the cors block it
	// inherits): a reload keeps such a route and its streams.
	Fingerprint string
	text        string

	// Range is where the route block is declared.
	Range hcl.Range
}
