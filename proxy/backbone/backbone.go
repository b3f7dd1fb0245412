// Package backbone connects ssegate to NATS: to an external server or
// cluster, or to a nats-server it starts in-process when none is configured.
package backbone

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/ssegate/ssegate/proxy/config"
)

// startTimeout bounds how long the embedded server may take to be ready.
const startTimeout = 10 * time.Second

// Backbone is a NATS connection, and the embedded server behind it if
// ssegate started one.
type Backbone struct {
	Conn     *nats.Conn
	embedded *server.Server
	closed   chan struct{}
	log      zerolog.Logger
}

// JetStream reports whether the NATS has JetStream, as far as ssegate can
// know: false for the embedded server without a store_dir, true for the
// embedded server with one and for any other NATS (which may still say no
// when asked).
func (b *Backbone) JetStream() bool {
	return b.embedded == nil || b.embedded.JetStreamEnabled()
}

// Connect connects as cfg says. With no URL it starts an embedded server,
// reachable over TCP only when cfg.Embedded.Listen is set. With a URL it
// keeps reconnecting for as long as the process runs, logging each
// disconnect and reconnect once.
func Connect(cfg config.NATS, log zerolog.Logger) (*Backbone, error) {
	b := &Backbone{closed: make(chan struct{}), log: log}
	name := cfg.Name
	if name == "" {
		name = "ssegate"
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() || nc.IsDraining() {
				return // our own Close
			}
			log.Warn().Err(err).Msg("NATS disconnected; reconnecting")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS reconnected")
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(b.closed) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Error().Err(err)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("NATS asynchronous error")
		}),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}

	url := cfg.URL
	if url == "" {
		srv, err := startEmbedded(cfg.Embedded, log)
		if err != nil {
			return nil, err
		}
		b.embedded = srv
		opts = append(opts, nats.InProcessServer(srv))
	} else {
		// A NATS cluster that is down when ssegate starts is the same
		// failure as one that goes down later: keep trying, don't exit.
		opts = append(opts, nats.RetryOnFailedConnect(true))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		if b.embedded != nil {
			b.embedded.Shutdown()
		}
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	b.Conn = nc
	if nc.IsConnected() {
		log.Info().Str("server", nc.ConnectedUrlRedacted()).Bool("embedded", b.embedded != nil).Msg("NATS connected")
	} else {
		log.Warn().Str("url", cfg.URL).Msg("NATS not reachable yet; retrying in the background")
	}
	return b, nil
}

func startEmbedded(cfg config.Embedded, log zerolog.Logger) (*server.Server, error) {
	opts := &server.Options{
		ServerName: cfg.ServerName,
		NoSigs:     true, // ssegate owns the signals
		DontListen: cfg.Listen == "",
		JetStream:  cfg.StoreDir != "",
		StoreDir:   cfg.StoreDir,
	}
	if opts.ServerName == "" {
		// Unique in a cluster of replicas, one per host.
		host, _ := os.Hostname()
		opts.ServerName = "ssegate-" + host
	}
	if c := cfg.Cluster; c != nil {
		host, port, err := net.SplitHostPort(c.Listen)
		if err != nil {
			return nil, fmt.Errorf("embedded NATS cluster listen address %q: %w", c.Listen, err)
		}
		opts.Cluster = server.ClusterOpts{Name: c.Name, Host: host}
		if opts.Cluster.Port, err = strconv.Atoi(port); err != nil {
			return nil, fmt.Errorf("embedded NATS cluster port %q: %w", port, err)
		}
		opts.Routes = server.RoutesFromStr(strings.Join(c.Routes, ","))
		if opts.DontListen {
			// nats-server does not become ready with routes but no client
			// listener: give it one nobody else can reach.
			opts.DontListen, opts.Host, opts.Port = false, "127.0.0.1", server.RANDOM_PORT
		}
	}
	if cfg.Listen != "" {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("embedded NATS listen address %q: %w", cfg.Listen, err)
		}
		if opts.Port, err = strconv.Atoi(port); err != nil {
			return nil, fmt.Errorf("embedded NATS listen port %q: %w", port, err)
		}
		opts.Host = host
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	logger := serverLogger{log: log.With().Str("component", "nats-server").Logger(), fatal: make(chan string, 1)}
	srv.SetLogger(logger, log.GetLevel() <= zerolog.DebugLevel, log.GetLevel() <= zerolog.TraceLevel)
	go srv.Start()
	ready := make(chan bool, 1)
	go func() { ready <- srv.ReadyForConnections(startTimeout) }()
	// A server that cannot start (its port taken) says so through Fatalf
	// and never becomes ready: fail at once with its reason.
	select {
	case ok := <-ready:
		if !ok {
			srv.Shutdown()
			return nil, errors.New("embedded NATS server did not become ready")
		}
	case msg := <-logger.fatal:
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS server: %s", msg)
	}
	if cfg.Listen != "" {
		log.Info().Str("url", srv.ClientURL()).Msg("embedded NATS server accepting connections")
	}
	return srv, nil
}

// Close drains the connection, so messages already received are handled,
// then stops the embedded server. It gives up when ctx ends.
func (b *Backbone) Close(ctx context.Context) error {
	defer func() {
		if b.embedded != nil {
			b.embedded.Shutdown()
		}
	}()
	if !b.Conn.IsConnected() {
		// Nothing can be drained from a server we are not connected to.
		b.Conn.Close()
		return nil
	}
	if err := b.Conn.Drain(); err != nil {
		b.Conn.Close()
		return fmt.Errorf("drain NATS connection: %w", err)
	}
	select {
	case <-b.closed:
		return nil
	case <-ctx.Done():
		b.Conn.Close()
		return fmt.Errorf("drain NATS connection: %w", ctx.Err())
	}
}

// serverLogger passes nats-server's log lines to zerolog, and its first
// fatal error to fatal instead of exiting.
type serverLogger struct {
	log   zerolog.Logger
	fatal chan string
}

var _ server.Logger = serverLogger{}

// Noticef logs at debug: the server's notices are its start-up banner,
// and ssegate logs what matters of it at info itself.
func (l serverLogger) Noticef(format string, v ...any) { l.log.Debug().Msgf(format, v...) }
func (l serverLogger) Warnf(format string, v ...any)   { l.log.Warn().Msgf(format, v...) }
func (l serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error().Msg(msg)
	select {
	case l.fatal <- msg:
	default:
	}
}
func (l serverLogger) Errorf(format string, v ...any) { l.log.Error().Msgf(format, v...) }
func (l serverLogger) Debugf(format string, v ...any) { l.log.Debug().Msgf(format, v...) }
func (l serverLogger) Tracef(format string, v ...any) { l.log.Trace().Msgf(format, v...) }
