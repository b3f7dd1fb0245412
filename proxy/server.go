// Package proxy is ssegate's HTTP edge: it serves every route of a config
// as Server-Sent Events, fed by NATS.
//
// A Server is an http.Handler, so a Go program can mount it in its own mux,
// as the Node "sse" library attached to an existing http.Server; New's
// options mirror that library's verifyRequest hook and connection event.
package proxy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/zclconf/go-cty/cty"

	"github.com/ssegate/ssegate/internal/peerwatch"
	"github.com/ssegate/ssegate/proxy/backbone"
	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/proxy/lease"
	"github.com/ssegate/ssegate/sources"
)

// errClosing refuses new streams once Shutdown has begun.
var errClosing = errors.New("server is shutting down")

// errReloaded is a stream request for a route a reload just removed or
// replaced: the client comes back and finds the new one.
var errReloaded = errors.New("route reloaded")

// comeBackLaterDelay is the retry hint, before jitter, for a stream that
// is refused for now (limits, shutdown, NATS gone) on a route that
// configures none.
const comeBackLaterDelay = 5 * time.Second

// upstreamHeaderTimeout bounds the wait for an upstream's response head.
const upstreamHeaderTimeout = 30 * time.Second

// startTimeout bounds how long New waits for NATS to confirm the
// subscriptions of the streams it opens.
const startTimeout = 5 * time.Second

// Server serves the routes of one config. Create it with New.
type Server struct {
	current    atomic.Pointer[generation]
	reloadMu   sync.Mutex // one Reload at a time
	log        zerolog.Logger
	warn       zerolog.Logger     // sampled, for what can repeat per message
	streamLogs *streamLogs        // both, for the streams
	given      *nats.Conn         // the caller's connection (WithNATS), or nil
	bb         *backbone.Backbone // the connection in use
	verify     func(*http.Request) bool
	onConnect  func(*Client)
	limits     *limits
	http       *http.Client // for the sources that fetch
	leaseTTL   time.Duration
	startCfg   *config.Config // what the listeners and NATS were set up with
	reloader   func() error
	leases     *lease.Leases // one replica at a time runs each fetching source
	feedBoard  feedBoard     // the fetching sources running here
	metrics    *metrics
	fanIn      *fanIn // reads the streams' core subscriptions

	gapMu     sync.Mutex // one afterGap at a time
	mu        sync.Mutex
	streams   map[string]*stream
	perRoute  map[*config.Route]int // streams held per route
	idle      idleStreams           // streams without a client
	stopping  bool                  // Shutdown has begun: no new streams or clients
	draining  bool                  // Drain was called: not ready, still serving
	handlers  sync.WaitGroup        // clients joined to a stream whose end has not run
	lingering sync.WaitGroup        // hijacked connections half-closed, not yet closed
	releasing sync.WaitGroup        // streams being freed, counted under mu

	// closing is closed once Shutdown has drained the subscriptions.
	closing chan struct{}
	peers   *peerwatch.Watcher // made by the first hijacked stream; guarded by mu
	// ended holds streams a reload ended, whose clients may still be
	// writing their last frames; guarded by mu.
	ended map[*stream]struct{}
	// hurry is cancelled when Shutdown runs short of time: writes to
	// clients that do not read fail at once instead of at write_timeout.
	hurry     context.Context
	hurryStop context.CancelFunc
}

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

// New builds a Server from cfg, as config.Load or config.Parse return it.
// It connects to NATS (starting the embedded server when the config names
// no URL) and opens the streams of routes without path parameters, so
// their history starts now.
func New(cfg *config.Config, opts ...Option) (*Server, error) {
	s := &Server{
		log:      zerolog.Nop(),
		streams:  map[string]*stream{},
		perRoute: map[*config.Route]int{},
		ended:    map[*stream]struct{}{},
		closing:  make(chan struct{}),
		limits:   newLimits(cfg),
		fanIn:    newFanIn(fanInQueue),
	}
	s.hurry, s.hurryStop = context.WithCancel(context.Background())
	for _, o := range opts {
		o(s)
	}
	s.warn = s.log.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Minute})
	s.streamLogs = &streamLogs{log: s.log, warn: s.warn}
	s.metrics = newMetrics(s)
	if s.http == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		// An upstream that takes the connection and never answers must
		// fail and be retried, not hold its source forever.
		tr.ResponseHeaderTimeout = upstreamHeaderTimeout
		s.http = &http.Client{Transport: tr}
	}
	var err error
	if s.given != nil {
		s.bb, err = backbone.Given(s.given, s.log)
	} else {
		s.bb, err = backbone.Connect(cfg.NATS, s.log)
	}
	if err != nil {
		return nil, err
	}
	s.startCfg = cfg
	if err := s.setupLeases(); err != nil {
		s.abort(cfg)
		return nil, err
	}
	g, err := s.build(cfg, nil)
	if err != nil {
		s.abort(cfg)
		return nil, err
	}
	s.current.Store(g)
	for _, rt := range cfg.Routes {
		if err := s.startRoute(g, rt); err != nil {
			s.abort(cfg)
			return nil, err
		}
	}
	if err := s.confirmSubscriptions(startTimeout); err != nil {
		s.log.Warn().Err(err).Msg("NATS did not confirm the subscriptions; events may arrive late")
	}
	s.bb.Notify(backbone.Events{Gap: s.afterGap, SlowConsumer: s.fanIn.lost})
	return s, nil
}

// afterGap mends every stream after NATS was away: each JetStream
// consumer is made again from the last event handed out (see
// stream.reconsume); core subscriptions are made again on a connection
// that replaced a closed one, and their clients told they may have
// missed events (NATS keeps nothing for a subscriber that was away).
func (s *Server) afterGap(replaced bool) {
	// One at a time: two replacements in a row would otherwise make a
	// stream's subscriptions twice.
	s.gapMu.Lock()
	defer s.gapMu.Unlock()
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return
	}
	streams := slices.Collect(maps.Values(s.streams))
	s.mu.Unlock()
	for _, rs := range s.gen().routes {
		if rs.reader != nil {
			go rs.reader.reconsume()
		}
	}
	for _, st := range streams {
		if st.reader != nil {
			continue
		}
		if replaced {
			if err := st.resubscribe(s.bb.Conn()); err != nil {
				st.warn().Err(err).Msg("subscription not made again on the new NATS connection")
			}
		}
		st.gap()
	}
}

// confirmSubscriptions waits for the server to have processed every
// subscription made so far. While disconnected there is nothing to wait
// for: the client library sends them all again on reconnect.
func (s *Server) confirmSubscriptions(timeout time.Duration) error {
	nc := s.bb.Conn()
	if !nc.IsConnected() {
		return nil
	}
	return nc.FlushTimeout(timeout)
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

// feedEnv is what the fetching sources of rt need.
func (s *Server) feedEnv(rt *config.Route) sources.FeedEnv {
	env := sources.FeedEnv{Publish: s.publisher(rt), HTTP: s.http, Log: s.log}
	if s.leases != nil {
		env.Lease = s.leases
	}
	return env
}

// trackFeed gives source i of rt, run for a stream with the path values
// params (nil: for the whole route), its status and counters, and lists it
// for /readyz until the returned func is called.
func (s *Server) trackFeed(rt *config.Route, i int, params []string, env *sources.FeedEnv) (untrack func()) {
	s.metrics.feedHooks(rt, i, env)
	status := env.Status
	s.feedBoard.add(rt.Path, i, params, status)
	return func() { s.feedBoard.remove(status) }
}

// feedName identifies source i of rt alike on every replica.
// The route's fingerprint is part of it: replicas running another text of
// the route (during a rolling deploy) hold leases of their own, and none
// resumes progress made under other items or key expressions.
func feedName(rt *config.Route, i int) string {
	return rt.Path + "#" + strconv.Itoa(i) + "#" + rt.Fingerprint
}

// setupLeases prepares the leases that let one replica at a time run each
// source that fetches (several replicas polling one upstream would
// multiply its load and the events). Their bucket is only made when a
// fetching source first asks, so a config without any costs nothing.
func (s *Server) setupLeases() error {
	if !s.bb.HasJetStream() {
		return nil // the embedded server, without JetStream: nothing to share
	}
	s.leases = lease.New(s.bb.JS, s.leaseTTL, s.log)
	return nil
}

// publisher is how the sources of rt hand events on: acknowledged by
// JetStream when the route's history is there, so an accepted webhook is
// never lost and a retried one never doubled.
func (s *Server) publisher(rt *config.Route) sources.Publisher {
	if rt.JetStream != nil {
		return sources.JetStreamPublisher(s.bb)
	}
	return sources.CorePublisher(s.bb)
}

// stopFeeding stops the sources that fetch for whole routes, and the auth
// blocks' key-set refreshes.
func (s *Server) stopFeeding() {
	g := s.gen()
	if g == nil {
		return
	}
	for _, rs := range g.routes {
		rs.feeds.cancel()
	}
	for _, rs := range g.routes {
		rs.feeds.halt()
	}
	for _, a := range g.auths {
		a.stop()
	}
}

// abort undoes a New that failed half way.
func (s *Server) abort(cfg *config.Config) {
	s.stopFeeding()
	for _, st := range s.streams {
		st.unsubscribe()
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	_ = s.bb.Close(ctx)
	s.fanIn.close()
}

// Conn returns the NATS connection the Server reads from, for a program
// that embeds ssegate and publishes its own events: what it publishes to a
// route's subject reaches every client of that route. A connection the
// Server made is replaced when NATS closes it: ask again rather than
// keep it.
func (s *Server) Conn() *nats.Conn { return s.bb.Conn() }

// ServeHTTP serves GET and HEAD on every route; other methods get 405 and
// unknown paths 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.gen().mux.ServeHTTP(w, r)
}

// streamID is what makes a stream: its route, its path values and, on a
// route with auth, the client's claims, through the subjects they resolve.
// Two clients whose subjects resolve alike share a stream (mappings cannot
// read the claims, so they see the same events).
type streamID struct {
	rt   *config.Route
	rs   *routeState // nil when a reload removed rt meanwhile
	vals []string
	vars *hcl.EvalContext // path, and auth when the route has it
	// subjects are what each source of the route reads for this stream.
	subjects []string
	key      string
}

// identify resolves the stream a client of rt with path values vals and
// claims (cty.NilVal without auth) reads.
func (s *Server) identify(g *generation, rt *config.Route, vals []string, claims cty.Value) (streamID, error) {
	vars := pathVars(g.cfg.EvalContext, rt, vals)
	if len(rt.Auth) > 0 {
		vars.Variables["auth"] = cty.ObjectVal(map[string]cty.Value{"claims": claims})
	}
	// The fingerprint keeps a reloaded route's streams apart from those of
	// the route it replaces, until those are closed. The key is kept as
	// its hash: a stream's path values and subjects could be a kilobyte.
	key := sha256.New()
	key.Write([]byte(rt.Fingerprint + "\x00" + rt.Path))
	for _, v := range vals {
		key.Write([]byte("\x00" + v))
	}
	subjects := make([]string, len(rt.Sources))
	for i, src := range rt.Sources {
		subject, err := src.Subject(vars)
		if err != nil {
			return streamID{}, err
		}
		key.Write([]byte("\x00" + subject))
		subjects[i] = subject
	}
	return streamID{rt: rt, rs: g.routes[rt], vals: vals, vars: vars, subjects: subjects, key: string(key.Sum(nil))}, nil
}

// pathVars is a context with the functions of funcs and the route's path
// parameters set to vals.
func pathVars(funcs *hcl.EvalContext, rt *config.Route, vals []string) *hcl.EvalContext {
	path := make(map[string]cty.Value, len(vals))
	for i, v := range vals {
		path[rt.Params[i]] = cty.StringVal(v)
	}
	vars := funcs.NewChild()
	vars.Variables = map[string]cty.Value{"path": cty.ObjectVal(path)}
	return vars
}

// openStream creates the stream id names and subscribes its sources.
func (s *Server) openStream(rs *routeState, id streamID) (*stream, error) {
	st := &stream{
		key:      id.key,
		route:    id.rt,
		params:   id.vals,
		m:        rs.m,
		funcs:    id.vars.Parent(),
		subjects: id.subjects,
		logs:     s.streamLogs,
		history:  newHistory(id.rt.History),
		fanIn:    s.fanIn,
		idle:     &s.idle,
		epoch:    newEpoch(),
		ready:    make(chan struct{}),
	}
	if err := st.subscribe(s.bb, rs.reader); err != nil {
		return nil, err
	}
	st.debug().Msg("stream opened")
	return st, nil
}

// attach finds or opens the stream and joins c, from address ip, to it.
// It also counts the handler for Shutdown, under the same lock that sees
// Shutdown begin. It returns once the stream's subscriptions are known to
// the NATS server, so whatever is published after the client's 200
// reaches the client.
func (s *Server) attach(ctx context.Context, id streamID, c *Client, ip netip.Addr, lastID string, resume bool) (*stream, error) {
	st, created, freed, err := s.join(id, c, ip, lastID, resume)
	if len(freed) > 0 {
		go s.free(freed)
	}
	if err != nil {
		return nil, err
	}
	if created {
		if err := s.confirmSubscriptions(id.rt.WriteTimeout); err != nil {
			st.warn().Err(err).Msg("NATS did not confirm the subscription; events may arrive late")
		}
		close(st.ready)
		return st, nil
	}
	select {
	case <-st.ready:
	case <-ctx.Done():
	}
	return st, nil
}

// join joins c to the stream id names, opening it if need be; freed are
// the lingering streams given up to make room for it, which the caller
// frees (with s.releasing counted for each) once s.mu is let go.
func (s *Server) join(id streamID, c *Client, ip netip.Addr, lastID string, resume bool) (st *stream, created bool, freed []*stream, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return nil, false, nil, errClosing
	}
	st = s.streams[id.key]
	if st == nil {
		if id.rs == nil || id.rs.ended {
			return nil, false, nil, errReloaded
		}
		if !s.limits.newStream(ip) {
			return nil, false, nil, errNewStreamsRate
		}
		if freed, err = s.makeRoom(id.rt); err != nil {
			return nil, false, freed, err
		}
		if st, err = s.openStream(id.rs, id); err != nil {
			return nil, false, freed, err
		}
		s.hold(st)
		created = true
	}
	st.join(c, lastID, resume)
	if created {
		st.startFeeding(id.vars, s.feedEnv(id.rt), s.trackFeed)
	}
	s.handlers.Add(1)
	return st, created, freed, nil
}

// errStreamsFull refuses a new stream when every stream max_streams
// allows is open: none lingers to be given up for it.
var errStreamsFull = &refusal{http.StatusServiceUnavailable, "server at max_streams; retry later"}

// errNewStreamsRate refuses a new stream to an address that opened more
// than new_streams_per_ip of them a second.
var errNewStreamsRate = &refusal{http.StatusTooManyRequests, "too many new streams from your address (new_streams_per_ip)"}

// makeRoom gives up the streams idle the longest until a new stream of
// rt fits max_streams, in all and on rt, and returns them; called with
// s.mu held. Their history goes with them: a client resuming from it
// later gets ResetEvent. An open stream is never given up.
func (s *Server) makeRoom(rt *config.Route) ([]*stream, error) {
	var freed []*stream
	for {
		onRoute := false
		switch {
		case len(s.streams) >= s.config().MaxStreams:
		case rt.MaxStreams > 0 && s.perRoute[rt] >= rt.MaxStreams:
			onRoute = true
		default:
			return freed, nil
		}
		victim := s.idle.oldest(func(st *stream) bool { return !onRoute || st.route == rt })
		if victim == nil {
			return freed, errStreamsFull
		}
		if s.streams[victim.key] != victim {
			// Not held any more (a reload ended it): only its listing
			// was left.
			victim.mu.Lock()
			victim.idle.remove(victim)
			victim.mu.Unlock()
			continue
		}
		victim.mu.Lock()
		victim.closed = true
		victim.mu.Unlock()
		victim.stopLinger()
		s.drop(victim)
		s.releasing.Add(1)
		freed = append(freed, victim)
	}
}

// hold lists st among the Server's streams; called with s.mu held.
func (s *Server) hold(st *stream) {
	s.streams[st.key] = st
	s.perRoute[st.route]++
}

// drop takes st out of the Server's streams; called with s.mu held.
func (s *Server) drop(st *stream) {
	delete(s.streams, st.key)
	if s.perRoute[st.route]--; s.perRoute[st.route] <= 0 {
		delete(s.perRoute, st.route)
	}
	st.mu.Lock()
	st.dropped = true
	st.idle.remove(st)
	st.mu.Unlock()
}

// free unsubscribes streams that makeRoom gave up.
func (s *Server) free(streams []*stream) {
	for _, st := range streams {
		st.unsubscribe()
		s.releasing.Done()
		st.debug().Msg("lingering stream given up for a new one (max_streams)")
	}
}

// release frees st if no client joined since its last one left (gen).
// A stream that Shutdown has taken out of the map is Shutdown's to close.
func (s *Server) release(st *stream, gen uint64) {
	s.mu.Lock()
	st.mu.Lock()
	free := s.streams[st.key] == st && st.gen == gen && len(st.clients) == 0
	if free {
		st.closed = true
		s.releasing.Add(1)
	}
	st.mu.Unlock()
	if free {
		s.drop(st)
	}
	s.mu.Unlock()
	if free {
		defer s.releasing.Done()
		st.unsubscribe()
		st.debug().Msg("stream freed after linger")
	}
}

// Shutdown stops taking streams; drains the subscriptions, so that what
// NATS has already sent reaches the clients; ends every open stream with
// what is queued for it and a final comment (EventSource then reconnects,
// to another replica or to this one once it is back); waits for every
// stream to end and for half-closed connections to be closed by their
// clients (or their linger); and closes the NATS connection if New opened
// it.
//
// Clients that do not read could hold it up for their write_timeout: once
// half of the time left is gone, writes to them fail at once. Without a
// deadline on ctx, the config's shutdown_timeout bounds the whole.
// http.Server.Shutdown alone would wait forever for HTTP/2 streams, which
// are never idle, and does not see HTTP/1.1 streams, which are taken from
// it; call both.
func (s *Server) Shutdown(ctx context.Context) error {
	// A reload under way finishes first, so that what it starts is
	// stopped here too; later ones are refused.
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return errors.New("shutdown already called")
	}
	s.stopping = true
	streams := maps.Clone(s.streams)
	for _, st := range streams {
		s.drop(st)
	}
	s.mu.Unlock()

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.config().ShutdownTimeout)
		defer cancel()
	}
	// The streams' steps end early enough to leave closing NATS (and
	// stopping the embedded server, which takes a moment) inside the
	// deadline too: a tenth of the time, at most a second.
	natsCtx := ctx
	ctx, cancelStreams := reserveEnd(ctx, 10, time.Second)
	defer cancelStreams()
	// Sources first, so that what they fetched last still reaches clients.
	s.stopFeeding()
	drainCtx, cancel := shareOf(ctx, 3)
	s.drainStreams(drainCtx, streams)
	cancel()
	close(s.closing)
	// The subscriptions are drained: what is queued is all there is, and
	// goes out before the goodbye.
	for _, st := range streams {
		st.end(shutdownLine, "stream ended: ssegate is shutting down")
	}

	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	hurryCtx, cancel := shareOf(ctx, 2)
	defer cancel()
	var err error
	select {
	case <-done:
	case <-hurryCtx.Done():
		s.hurryStop()
		s.mu.Lock()
		ended := slices.Collect(maps.Keys(s.ended))
		s.mu.Unlock()
		for _, st := range streams {
			st.hurry()
		}
		for _, st := range ended {
			st.hurry()
		}
		select {
		case <-done:
		case <-ctx.Done():
			err = fmt.Errorf("wait for streams to close: %w", ctx.Err())
		}
	}
	s.hurryStop()
	// Streams that ended with their last frame wait for their clients to
	// close their side (or for the linger to pass): exiting now would
	// reset them, and that can destroy frames not read yet.
	waitGroup(ctx, &s.lingering)
	s.mu.Lock()
	if s.peers != nil {
		_ = s.peers.Close()
	}
	s.mu.Unlock()
	// A stream freed just before Shutdown may still be stopping its
	// sources; NATS stays until they are done, or the time is up.
	waitGroup(ctx, &s.releasing)
	s.http.CloseIdleConnections()
	err = errors.Join(err, s.bb.Close(natsCtx))
	s.fanIn.close()
	return err
}

// forgetEnded lets go of a stream a reload ended once its last client
// has left.
func (s *Server) forgetEnded(st *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ended[st]; ok && st.empty() {
		delete(s.ended, st)
	}
}

// peerWatcher returns the Watcher that learns when hijacked clients go.
func (s *Server) peerWatcher() (*peerwatch.Watcher, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.peers == nil {
		pw, err := peerwatch.New()
		if err != nil {
			return nil, err
		}
		s.peers = pw
	}
	return s.peers, nil
}

// waitGroup waits for wg, or until ctx ends.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// reserveEnd returns a context that ends before ctx does, by 1/n of the
// time ctx has left, and by no more than most.
func reserveEnd(ctx context.Context, n int, most time.Duration) (context.Context, context.CancelFunc) {
	deadline, _ := ctx.Deadline()
	return context.WithDeadline(ctx, deadline.Add(-min(time.Until(deadline)/time.Duration(n), most)))
}

// shareOf returns a context that ends after 1/n of the time ctx has left.
func shareOf(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Until(deadline)/time.Duration(n))
}

// drainStreams drains every subscription of streams at once and waits,
// until ctx ends, for the messages NATS sent before the unsubscribe to be
// delivered; then the streams take no more.
func (s *Server) drainStreams(ctx context.Context, streams map[string]*stream) {
	var closed []<-chan nats.SubStatus
	var consumers []jetstream.ConsumeContext
	readers := map[*jsReader]bool{}
	// Every stream's sources are told to stop before any is waited for:
	// each may spend a moment saving its progress and releasing its lease.
	for _, st := range streams {
		st.stopLinger()
		st.feeds.cancel()
	}
	for _, st := range streams {
		st.feeds.halt()
		st.mu.Lock()
		subs := st.subs
		st.mu.Unlock()
		if r := st.reader; r != nil && !readers[r] {
			readers[r] = true
			if cc := r.drain(); cc != nil {
				consumers = append(consumers, cc)
			}
		}
		for _, sub := range subs {
			ch := sub.StatusChanged(nats.SubscriptionClosed)
			if err := sub.Drain(); err != nil {
				continue
			}
			closed = append(closed, ch)
		}
	}
	for _, ch := range closed {
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
	// Drained, the subscriptions' last messages are in the fan-in.
	s.fanIn.settle(ctx)
	for _, cc := range consumers {
		select {
		case <-cc.Closed():
		case <-ctx.Done():
		}
	}
	for _, st := range streams {
		st.mu.Lock()
		st.closed = true
		st.mu.Unlock()
		// Those not drained in time.
		st.unsubscribe()
	}
}
