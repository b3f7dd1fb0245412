// Package config reads ssegate's HCL configuration into checked values.
//
// Every problem is reported as an HCL diagnostic pointing at file:line:col,
// all of them at once, before anything starts. Per-message expressions stay
// unevaluated (see package sources) and are only checked here.
package config

import (
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/rs/zerolog"

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
)

// Config is a whole, checked configuration.
type Config struct {
	Listen          string
	ShutdownTimeout time.Duration
	Log             Log
	NATS            NATS
	Routes          []*Route

	// EvalContext holds the functions; per-stream and per-message
	// contexts are its children.
	EvalContext *hcl.EvalContext
}

// Log configures logging.
type Log struct {
	Level  zerolog.Level
	Format string // "console" or "json"
}

// NATS configures the backbone: an external server or cluster at URL, or
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
}

// Route maps one URL path pattern to its sources.
type Route struct {
	// Path is a net/http ServeMux path pattern, such as /stocks/{symbol}.
	Path string
	// Params are the names of the path's wildcards, in order.
	Params []string

	Keepalive    time.Duration // 0: no keepalive comments
	Retry        time.Duration // 0: no retry line
	History      int           // events kept per stream for resume
	Linger       time.Duration // how long a stream outlives its last client
	Buffer       int           // frames queued per client before it is dropped
	WriteTimeout time.Duration

	Sources []sources.Spec

	// Range is where the route block is declared.
	Range hcl.Range
}
