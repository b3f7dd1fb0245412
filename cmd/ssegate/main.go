// Command ssegate is a reverse proxy that turns backend feeds into
// Server-Sent Events. See README.md.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/ssegate/ssegate/proxy"
	"github.com/ssegate/ssegate/proxy/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func runRun(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("run", stdout)
	path := configFlag(fs)
	if code, done := parseOnlyFlags(fs, args, stderr); done {
		return code
	}
	return runProxy(*path, stderr)
}

func runValidate(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("validate", stdout)
	path := configFlag(fs)
	if code, done := parseOnlyFlags(fs, args, stderr); done {
		return code
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: valid, %d route(s)\n", *path, len(cfg.Routes))
	return 0
}

// loadConfig loads the config at path, saying where it looked when there
// is none.
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, noConfig(path)
	}
	return cfg, err
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", stdout)
	if code, done := parseOnlyFlags(fs, args, stderr); done {
		return code
	}
	fmt.Fprintln(stdout, "ssegate", buildVersion())
	return 0
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func newLogger(cfg config.Log, w io.Writer) zerolog.Logger {
	if cfg.Format == "console" {
		f, isFile := w.(*os.File)
		color := isFile && isatty.IsTerminal(f.Fd())
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339, NoColor: !color}
	}
	return zerolog.New(w).Level(cfg.Level).With().Timestamp().Logger()
}

// newHTTPServer builds the public listener's server. Browsers open at most
// six HTTP/1.1 connections per origin, so a page with several streams
// starves itself; over HTTP/2 streams share one connection. With TLS,
// HTTP/2 is offered by ALPN; h2c serves it in cleartext, for a proxy that
// terminates TLS in front.
func newHTTPServer(cfg *config.Config, h http.Handler) (*http.Server, error) {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	if cfg.H2C {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		hs.Protocols = &p
	}
	if cfg.TLS != nil {
		// Loaded now, so a bad certificate fails the start, not the first
		// client.
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load certificate: %w", err)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return hs, nil
}

// serve serves ln with hs, over TLS when hs has a certificate.
func serve(hs *http.Server, ln net.Listener) error {
	if hs.TLSConfig != nil {
		return hs.ServeTLS(ln, "", "")
	}
	return hs.Serve(ln)
}

// runProxy serves until SIGINT or SIGTERM, then shuts down within the
// config's shutdown_timeout.
func runProxy(path string, stderr io.Writer) int {
	// Caught from the start: its default action would end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cfg, err := loadConfig(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log := newLogger(cfg.Log, stderr)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// The config in force, for the shutdown settings: a reload may change
	// them.
	var latest atomic.Pointer[config.Config]
	latest.Store(cfg)
	var srv *proxy.Server
	var reloading sync.Mutex // a SIGHUP and a POST /reload: one at a time, in order
	reload := func() error {
		reloading.Lock()
		defer reloading.Unlock()
		next, err := config.Load(path)
		if err != nil {
			logRefusedConfig(log, err)
			return err
		}
		if err := srv.Reload(next); err != nil {
			log.Error().Err(err).Msg("reload refused; the old config goes on")
			return err
		}
		latest.Store(next)
		return nil
	}
	srv, err = proxy.New(cfg, proxy.WithLogger(log), proxy.WithReloader(reload))
	if err != nil {
		log.Error().Err(err).Msg("start")
		return 1
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		log.Error().Err(err).Msg("listen")
		shutdown(srv, nil, cfg.ShutdownTimeout, log)
		return 1
	}
	hs, err := newHTTPServer(cfg, srv)
	if err != nil {
		log.Error().Err(err).Msg("tls")
		shutdown(srv, nil, cfg.ShutdownTimeout, log)
		return 1
	}
	admin, err := startAdmin(cfg, srv, log)
	if err != nil {
		log.Error().Err(err).Msg("admin listener")
		shutdown(srv, nil, cfg.ShutdownTimeout, log)
		return 1
	}
	// Last to go: /readyz says "shutting down" through shutdown_delay and
	// while streams end.
	defer admin()
	served := make(chan error, 1)
	go func() { served <- serve(hs, ln) }()
	log.Info().Str("listen", ln.Addr().String()).Int("routes", len(cfg.Routes)).Bool("tls", cfg.TLS != nil).Bool("h2c", cfg.H2C).Str("version", buildVersion()).Msg("ssegate serving")

wait:
	for {
		select {
		case <-hup:
			log.Info().Msg("SIGHUP: reloading the config")
			_ = reload()
		case <-ctx.Done():
			log.Info().Msg("signal received; shutting down")
			break wait
		case err := <-served:
			log.Error().Err(err).Msg("serve")
			shutdown(srv, nil, latest.Load().ShutdownTimeout, log)
			return 1
		}
	}
	stop() // a second signal kills at once
	final := latest.Load()
	if d := final.ShutdownDelay; d > 0 {
		// Serving on, not ready, so that load balancers stop sending
		// browsers here before their streams are ended.
		srv.Drain()
		log.Info().Dur("shutdown_delay", d).Msg("not ready; shutting down after shutdown_delay")
		time.Sleep(d)
	}
	if !shutdown(srv, hs, final.ShutdownTimeout, log) {
		return 1
	}
	log.Info().Msg("stopped")
	return 0
}

// startAdmin serves the admin handler on the admin block's listener, if
// there is one, and returns what stops it.
func startAdmin(cfg *config.Config, srv *proxy.Server, log zerolog.Logger) (stop func(), err error) {
	if cfg.Admin == nil {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: srv.Admin(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("admin listener")
		}
	}()
	log.Info().Str("listen", ln.Addr().String()).Msg("admin serving")
	return func() { _ = hs.Close() }, nil
}

// shutdown stops the listener and the streams together: http.Server's
// Shutdown waits for connections to go idle, which streams only do once
// the proxy has ended them.
func shutdown(srv *proxy.Server, hs *http.Server, timeout time.Duration, log zerolog.Logger) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	httpDone := make(chan error, 1)
	if hs != nil {
		go func() { httpDone <- hs.Shutdown(ctx) }()
	} else {
		httpDone <- nil
	}
	ok := true
	if err := srv.Shutdown(ctx); err != nil {
		log.Error().Err(err).Msg("shutdown")
		ok = false
	}
	if err := <-httpDone; err != nil {
		log.Error().Err(err).Msg("HTTP shutdown; closing remaining connections")
		_ = hs.Close()
		ok = false
	}
	return ok
}

// logRefusedConfig logs why a reload's config was refused: a line per
// diagnostic, each with its position.
func logRefusedConfig(log zerolog.Logger, err error) {
	var diags *config.DiagnosticsError
	if !errors.As(err, &diags) {
		log.Error().Err(err).Msg("reload refused: the config cannot be read; the old one goes on")
		return
	}
	problems := diags.Problems()
	log.Error().Int("problems", len(problems)).Msg("reload refused: the config has errors; the old one goes on")
	for _, p := range problems {
		log.Error().Str("at", p.At).Str("detail", p.Detail).Msg(p.Summary)
	}
}
