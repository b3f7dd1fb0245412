// Package natsconn connects ssegate to NATS: to an external server or
// cluster, or to a nats-server it starts in-process when none is configured.
package natsconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ssegate/ssegate/proxy/config"
)

// startTimeout bounds how long the embedded server may take to be ready.
const startTimeout = 10 * time.Second

// Conns is the NATS connection in use, and the embedded server behind
// it if ssegate started one. nats.go gives a connection up for good when
// the server closes it with an error (a protocol violation, its
// max_reconnects spent, an auth error): a Conns that made its
// connection then makes another, and tells whoever asked (Notify).
type Conns struct {
	embedded *server.Server
	log      zerolog.Logger
	url      string
	opts     []nats.Option // without the handlers bound to one connection
	owned    bool          // made here: recovered, and closed by Close

	cur      atomic.Pointer[link]
	stopping atomic.Bool   // Close was called: a closed connection stays so
	replaced atomic.Uint64 // connections made to replace a closed one

	mu     sync.Mutex
	events Events
}

// Events are what a Conns tells its user, each on a goroutine of its
// own.
type Events struct {
	// Gap is called after each time the connection was down and messages
	// may have been missed: with replaced false when it reconnected by
	// itself (nats.go makes the subscriptions again), true when a new
	// connection replaced one NATS closed (they must be made again on it).
	Gap func(replaced bool)
	// SlowConsumer is called when NATS dropped messages of sub because it
	// did not keep up. A connection given with Given does not report it:
	// its error handler is the caller's.
	SlowConsumer func(sub *nats.Subscription)
}

// link is one connection and its JetStream context.
type link struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	closed chan struct{} // closed with the connection
}

// Conn is the connection in use. It changes only when NATS closed the
// previous one for good.
func (b *Conns) Conn() *nats.Conn { return b.cur.Load().nc }

// JS is the JetStream context of the connection in use.
func (b *Conns) JS() jetstream.JetStream { return b.cur.Load().js }

// Notify sets what the Conns tells of from now on.
func (b *Conns) Notify(e Events) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events = e
}

func (b *Conns) notified() Events {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.events
}

// Epoch counts the connection's comebacks: its reconnects, and the
// connections made to replace a closed one. nats.go counts a reconnect
// before the connection is back in use, so a subscriber that began at
// the epoch a Gap is reported at came after the gap, and missed nothing
// of it.
func (b *Conns) Epoch() uint64 {
	return b.replaced.Load()<<32 | uint64(uint32(b.Conn().Stats().Reconnects))
}

func (b *Conns) gap(replaced bool) {
	if fn := b.notified().Gap; fn != nil {
		go fn(replaced)
	}
}

// Given wraps a connection the caller made and keeps: it is not
// recovered when NATS closes it, nor closed by Close.
func Given(nc *nats.Conn, log zerolog.Logger) (*Conns, error) {
	b := &Conns{log: log}
	l, err := newLink(nc)
	if err != nil {
		return nil, err
	}
	b.cur.Store(l)
	go b.watch(l)
	return b, nil
}

func newLink(nc *nats.Conn) (*link, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	return &link{nc: nc, js: js, closed: make(chan struct{})}, nil
}

// watch reports l's reconnects as gaps until it closes.
func (b *Conns) watch(l *link) {
	ch := l.nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	defer l.nc.RemoveStatusListener(ch)
	for st := range ch {
		if st == nats.CLOSED {
			return
		}
		b.gap(false)
	}
}

// HasJetStream reports whether the NATS has JetStream, as far as ssegate
// can know: false for the embedded server without a store_dir, true for
// the embedded server with one and for any other NATS (which may still
// say no when asked).
func (b *Conns) HasJetStream() bool {
	return b.embedded == nil || b.embedded.JetStreamEnabled()
}

// Connect connects as cfg says. With no URL it starts an embedded server,
// reachable over TCP only when cfg.Embedded.Listen is set. With a URL it
// keeps reconnecting for as long as the process runs, logging each
// disconnect and reconnect once.
func Connect(cfg config.NATS, log zerolog.Logger) (*Conns, error) {
	b := &Conns{log: log, url: cfg.URL, owned: true}
	name := cfg.Name
	if name == "" {
		name = "ssegate"
	}
	b.opts = []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() || nc.IsDraining() {
				return // closed: the closed handler says why
			}
			log.Warn().Err(err).Msg("NATS disconnected; reconnecting")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS reconnected")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Error().Err(err)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("NATS asynchronous error")
			if fn := b.notified().SlowConsumer; fn != nil && sub != nil && errors.Is(err, nats.ErrSlowConsumer) {
				go fn(sub)
			}
		}),
	}
	if cfg.CredsFile != "" {
		b.opts = append(b.opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.URL == "" {
		srv, err := startEmbedded(cfg.Embedded, log)
		if err != nil {
			return nil, err
		}
		b.embedded = srv
		b.opts = append(b.opts, nats.InProcessServer(srv))
	} else {
		// A NATS cluster that is down when ssegate starts is the same
		// failure as one that goes down later: keep trying, don't exit.
		b.opts = append(b.opts, nats.RetryOnFailedConnect(true))
	}
	l, err := b.dial()
	if err != nil {
		if b.embedded != nil {
			b.embedded.Shutdown()
		}
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	b.cur.Store(l)
	nc := l.nc
	switch {
	case b.embedded != nil:
		// Connected in-process: the URL nats.go reports is its default,
		// not an address anybody can reach.
		where := "in-process only"
		if cfg.Embedded.Listen != "" {
			where = b.embedded.ClientURL()
		}
		log.Info().Str("server", where).Bool("embedded", true).Msg("NATS connected")
	case nc.IsConnected():
		log.Info().Str("server", nc.ConnectedUrlRedacted()).Bool("embedded", false).Msg("NATS connected")
	default:
		log.Warn().Str("url", cfg.URL).Msg("NATS not reachable yet; retrying in the background")
	}
	return b, nil
}

// dial makes a connection whose closing, unless Close did it, starts
// the making of the next.
func (b *Conns) dial() (*link, error) {
	l := &link{closed: make(chan struct{})}
	opts := append(slices.Clone(b.opts), nats.ClosedHandler(func(nc *nats.Conn) {
		close(l.closed)
		if b.stopping.Load() {
			return
		}
		err := nc.LastError()
		b.log.Error().Err(err).Msg("NATS closed the connection; making a new one")
		go b.replace()
	}))
	nc, err := nats.Connect(b.url, opts...)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	l.nc, l.js = nc, js
	go b.watch(l)
	return l, nil
}

// replace makes connections, with backoff, until one takes the closed
// one's place or Close is called.
func (b *Conns) replace() {
	for delay := 100 * time.Millisecond; !b.stopping.Load(); delay = min(2*delay, 5*time.Second) {
		l, err := b.dial()
		if err == nil {
			b.cur.Store(l)
			// After the store: one who reads the epoch between the two
			// takes it for older, and is told of a gap it did not have,
			// rather than missing one it had.
			b.replaced.Add(1)
			if b.stopping.Load() {
				l.nc.Close()
				return
			}
			b.log.Warn().Str("server", l.nc.ConnectedUrlRedacted()).Msg("NATS connection replaced; subscriptions made again")
			b.gap(true)
			return
		}
		b.log.Warn().Err(err).Dur("retry_in", delay).Msg("NATS connection not made yet")
		time.Sleep(delay)
	}
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
// then stops the embedded server. It gives up when ctx ends. A connection
// the caller gave is left open.
func (b *Conns) Close(ctx context.Context) error {
	if !b.owned {
		return nil
	}
	b.stopping.Store(true)
	defer func() {
		if b.embedded != nil {
			b.embedded.Shutdown()
		}
	}()
	l := b.cur.Load()
	if !l.nc.IsConnected() {
		// Nothing can be drained from a server we are not connected to.
		l.nc.Close()
		return nil
	}
	if err := l.nc.Drain(); err != nil {
		l.nc.Close()
		return fmt.Errorf("drain NATS connection: %w", err)
	}
	select {
	case <-l.closed:
		return nil
	case <-ctx.Done():
		l.nc.Close()
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
