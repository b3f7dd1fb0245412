// Package proxy serves every route of a config as Server-Sent Events, fed
// by NATS.
//
// A Server is an http.Handler, so a Go program can mount it in its own mux,
// as the Node "sse" library attached to an existing http.Server; New's
// options mirror that library's verifyRequest hook and connection event.
//
// Its files are grouped by job, in the order a request and an event meet
// them:
//
//	edge_*    the HTTP edge: a request's route, auth, CORS, limits, response head
//	hub_*     streams (a route with its path values filled in): their sources,
//	          NATS and JetStream subscriptions, history, resume, and the
//	          fan-out that encodes each event once for every client
//	writer_*  a client: its bounded queue, the writer that drains it, the sink
//	          (a hijacked connection or a handler's ResponseWriter)
//	ops_*     the operator's side: admin listener and page, metrics, reload,
//	          shutdown
//
// server.go and options.go assemble a Server; frames.go holds the frames
// ssegate writes of its own (reset, token expiry, goodbyes).
package proxy

import (
	"context"
	"maps"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/ssegate/ssegate/internal/peerwatch"
	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/proxy/lease"
	"github.com/ssegate/ssegate/proxy/natsconn"
)

// Lock order. A lock is taken only while holding those above it, never
// one above while holding one below:
//
//	Server.reloadMu, Server.gapMu
//	  Server.mu
//	    jsReader.mu, limits.mu, feedBoard.mu, feedRuns.mu, fanIn.mu (then a shard's mu)
//	    stream.mu (a jsReader's handing is taken before it)
//	      idleStreams.mu
//	      Client.mu
//
//	peerwatch.Watcher's mu (its callbacks run under it)
//	  connSink.mu, released before
//	  Client.mu
//
// Writes to sockets never run under these locks. NATS requests run under
// Server.mu only as a stream opens (its subscriptions, and a route's
// first JetStream consumer).

// upstreamHeaderTimeout bounds the wait for an upstream's response head.
const upstreamHeaderTimeout = 30 * time.Second

// startTimeout bounds how long New waits for NATS to confirm the
// subscriptions of the streams it opens.
const startTimeout = 5 * time.Second

// Server serves the routes of one config. Create it with New.
type Server struct {
	current    atomic.Pointer[snapshot]
	reloadMu   sync.Mutex // one Reload at a time
	log        zerolog.Logger
	warn       zerolog.Logger  // sampled, for what can repeat per message
	streamLogs *streamLogs     // both, for the streams
	given      *nats.Conn      // the caller's connection (WithNATS), or nil
	conns      *natsconn.Conns // the connection in use
	verify     func(*http.Request) bool
	onConnect  func(*Client)
	limits     *limits
	http       *http.Client // for the sources that fetch
	leaseTTL   time.Duration
	startCfg   *config.Config // what the listeners and NATS were set up with
	reloader   func() error
	leases     *lease.Leases // one replica at a time runs each fetching source
	feedBoard  feedBoard     // the fetching sources running here
	feedRuns   feedRuns      // the runs of the sources fetching per stream
	metrics    *metrics
	fanIn      *fanIn // reads the streams' core subscriptions
	replica    string // names this Server in answers to other replicas
	controlAll string // every control subject: the start config's control_subject.>

	controlMu sync.Mutex
	control   []*nats.Subscription // take revocations and position requests

	gapMu     sync.Mutex // one afterGap at a time
	mu        sync.Mutex
	streams   map[string]*stream
	held      int                   // the weights of the streams held (see weight)
	perRoute  map[*config.Route]int // the same, per route
	idle      idleStreams           // streams without a client
	stopping  bool                  // Shutdown has begun: no new streams or clients
	draining  bool                  // Drain was called: not ready, still serving
	handlers  sync.WaitGroup        // clients joined to a stream whose end has not run
	lingering sync.WaitGroup        // hijacked connections half-closed, not yet closed
	freeing   sync.WaitGroup        // streams being freed, counted under mu

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
		replica:  replicaName(),
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
		s.conns, err = natsconn.Given(s.given, s.log)
	} else {
		s.conns, err = natsconn.Connect(cfg.NATS, s.log)
	}
	if err != nil {
		return nil, err
	}
	s.startCfg = cfg
	s.controlAll = cfg.NATS.ControlSubject + ".>"
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
	if err := s.listenControl(); err != nil {
		s.abort(cfg)
		return nil, err
	}
	// The control subscriptions too: a revocation published once New has
	// returned reaches this Server.
	if err := s.confirmSubscriptions(startTimeout); err != nil {
		s.log.Warn().Err(err).Msg("NATS did not confirm the subscriptions; events may arrive late")
	}
	s.conns.Notify(natsconn.Events{Gap: s.afterGap, SlowConsumer: s.fanIn.lost})
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
	// Clients that joined once NATS was back missed nothing; on a
	// replaced connection, whose subscriptions are made again below,
	// every client may have.
	epoch := s.conns.Epoch()
	if replaced {
		epoch = math.MaxUint64
	}
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return
	}
	streams := slices.Collect(maps.Values(s.streams))
	s.mu.Unlock()
	for _, rs := range s.snapshot().routes {
		if rs.reader != nil {
			go rs.reader.reconsume()
		}
	}
	if replaced {
		if err := s.listenControl(); err != nil {
			s.log.Error().Err(err).Msg("revocations are not taken on the new NATS connection")
		}
	}
	for _, st := range streams {
		if st.reader != nil {
			continue
		}
		if replaced {
			if err := st.resubscribe(s.conns.Conn()); err != nil {
				st.warn().Err(err).Msg("subscription not made again on the new NATS connection")
			}
		}
		st.gap(epoch)
	}
}

// confirmSubscriptions waits for the server to have processed every
// subscription made so far. While disconnected there is nothing to wait
// for: the client library sends them all again on reconnect.
func (s *Server) confirmSubscriptions(timeout time.Duration) error {
	nc := s.conns.Conn()
	if !nc.IsConnected() {
		return nil
	}
	return nc.FlushTimeout(timeout)
}

// abort undoes a New that failed half way.
func (s *Server) abort(cfg *config.Config) {
	s.stopControl()
	s.stopFeeding()
	for _, st := range s.streams {
		st.unsubscribe()
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	_ = s.conns.Close(ctx)
	s.fanIn.close()
}

// Conn returns the NATS connection the Server reads from, for a program
// that embeds ssegate and publishes its own events: what it publishes to a
// route's subject reaches every client of that route. A connection the
// Server made is replaced when NATS closes it: ask again rather than
// keep it.
func (s *Server) Conn() *nats.Conn { return s.conns.Conn() }

// ServeHTTP serves GET and HEAD on every route; other methods get 405 and
// unknown paths 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.snapshot().mux.ServeHTTP(w, r)
}
