package proxy

import (
	"context"
	"strconv"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/proxy/lease"
	"github.com/ssegate/ssegate/proxy/natsconn"
	"github.com/ssegate/ssegate/sources"
)

// The NATS connection and the leases are what the sources' interfaces
// ask for.
var (
	_ sources.Conns = (*natsconn.Conns)(nil)
	_ sources.Lease = (*lease.Leases)(nil)
)

// envFunc assembles the environment of a route's source i, and returns
// what undoes its listing once the source has stopped.
type envFunc func(i int) (env sources.FeedEnv, untrack func())

// feedGroup is the fetching sources running for a route as a whole.
type feedGroup struct {
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// start runs rt's fetching sources that are not per stream, each in the
// environment envOf makes.
func (f *feedGroup) start(rt *config.Route, envOf envFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	f.stop = cancel
	for i, src := range rt.Sources {
		fd, ok := src.(sources.Feeder)
		if !ok || fd.PerStream() {
			continue
		}
		env, untrack := envOf(i)
		f.wg.Go(func() {
			defer untrack()
			fd.Feed(ctx, env)
		})
	}
}

// cancel tells the sources to stop, without waiting: a caller stopping
// several groups tells them all first, since each may take a moment to
// save its progress and release its lease.
func (f *feedGroup) cancel() {
	if f.stop != nil {
		f.stop()
	}
}

// halt stops the sources and waits for them.
func (f *feedGroup) halt() {
	f.cancel()
	f.wg.Wait()
}

// feedEnv assembles everything source i of rt needs to run, in one
// place, for the streams with path values params (and topic, when the
// source runs per topic; vars, their variables), or for the whole route
// (nil params; vars, the config's functions): where it publishes, its
// HTTP client, lease, log, status and counters. The source is listed for
// /readyz until untrack is called.
func (s *Server) feedEnv(rt *config.Route, i int, params []string, topic string, vars *hcl.EvalContext) (env sources.FeedEnv, untrack func()) {
	log := s.log.With().Str("route", rt.Path)
	if params != nil {
		log = log.Strs("params", params)
	}
	if topic != "" {
		log = log.Str("topic", topic)
	}
	env = sources.FeedEnv{
		Publish:   s.publisher(rt),
		HTTP:      s.http,
		Log:       log.Int("source", i).Logger(),
		StreamCtx: vars,
		Name:      feedName(rt, i),
		Route:     rt.Path,
	}
	if s.leases != nil {
		env.Lease = s.leases
	}
	s.metrics.feedHooks(rt, i, &env)
	s.feedBoard.add(SourceReport{Route: rt.Path, Source: i, Params: params, Topic: topic}, env.Status)
	return env, func() { s.feedBoard.remove(env.Status) }
}

// startStreamFeeds has st hold a run of each source that fetches per
// stream, for each of its topics (vars, the stream's variables): the run
// that the streams reading the same subject share, started if none is.
func (s *Server) startStreamFeeds(st *stream, vars *hcl.EvalContext) {
	rt, params := st.route, st.params
	for _, p := range st.parts {
		fd, ok := rt.Sources[p.source].(sources.Feeder)
		if !ok || !fd.PerStream() {
			continue
		}
		topic, topicVars := "", vars
		if p.topic >= 0 {
			topic = st.topics[p.topic]
			topicVars = withTopic(vars, topic)
		}
		s.feedRuns.hold(&st.feeds, feedKey{rt, p.source, p.subject}, func(ctx context.Context) {
			env, untrack := s.feedEnv(rt, p.source, params, topic, topicVars)
			defer untrack()
			fd.Feed(ctx, env)
		})
	}
}

// startRouteFeeds starts the sources that fetch for rt as a whole.
func (s *Server) startRouteFeeds(g *snapshot, rt *config.Route) {
	g.routes[rt].feeds.start(rt, func(i int) (sources.FeedEnv, func()) {
		return s.feedEnv(rt, i, nil, "", g.cfg.EvalContext)
	})
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
	if !s.conns.HasJetStream() {
		return nil // the embedded server, without JetStream: nothing to share
	}
	s.leases = lease.New(s.conns.JS, s.leaseTTL, s.log)
	return nil
}

// publisher is how the sources of rt hand events on: acknowledged by
// JetStream when the route's history is there, so an accepted webhook is
// never lost and a retried one never doubled.
func (s *Server) publisher(rt *config.Route) sources.Publisher {
	if rt.JetStream != nil {
		return guarded{sources.JetStreamPublisher(s.conns), s}
	}
	return guarded{sources.CorePublisher(s.conns), s}
}

// stopFeeding stops the sources that fetch for whole routes, and the auth
// blocks' key-set refreshes.
func (s *Server) stopFeeding() {
	g := s.snapshot()
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
