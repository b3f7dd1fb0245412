package proxy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/hashicorp/hcl/v2"
	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/sources"
	"github.com/zclconf/go-cty/cty"
)

// errClosing refuses new streams once Shutdown has begun.
var errClosing = errors.New("server is shutting down")

// errReloaded is a stream request for a route a reload just removed or
// replaced: the client comes back and finds the new one.
var errReloaded = errors.New("route reloaded")

// streamID is what makes a stream: its route, its path values, its
// topics and, on a route with auth, the client's claims, through the
// subjects they resolve. Two clients whose subjects resolve alike share a
// stream (mappings cannot read the claims, so they see the same events).
type streamID struct {
	rt     *config.Route
	rs     *routeState // nil when a reload removed rt meanwhile
	vals   []string
	topics []string         // sorted, each once; nil on a route without topics
	vars   *hcl.EvalContext // path, and auth when the route has it
	// parts are what each source of the route reads for each topic.
	parts []part
	key   string
}

// streamVars are the variables of the stream of rt with path values vals
// and claims (cty.NilVal without auth).
func streamVars(g *snapshot, rt *config.Route, vals []string, claims cty.Value) *hcl.EvalContext {
	vars := pathVars(g.cfg.EvalContext, rt, vals)
	if len(rt.Auth) > 0 {
		vars.Variables["auth"] = cty.ObjectVal(map[string]cty.Value{"claims": claims})
	}
	return vars
}

// clientVars are the variables of the stream of rt with path values vals
// for a client with claims, which only a route with auth reads.
func clientVars(g *snapshot, rt *config.Route, vals []string, claims map[string]any) (*hcl.EvalContext, error) {
	v := cty.NilVal
	if len(rt.Auth) > 0 {
		var err error
		if v, err = claimsValue(claims); err != nil {
			return nil, fmt.Errorf("claims: %w", err)
		}
	}
	return streamVars(g, rt, vals, v), nil
}

// identify resolves the stream that a client of rt with path values
// vals, topics (sorted, each once; nil without) and the stream's
// variables vars (streamVars) reads.
func (s *Server) identify(g *snapshot, rt *config.Route, vals, topics []string, vars *hcl.EvalContext) (streamID, error) {
	// The fingerprint keeps a reloaded route's streams apart from those of
	// the route it replaces, until those are closed. The key is kept as
	// its hash: a stream's path values and subjects could be a kilobyte.
	key := sha256.New()
	key.Write([]byte(rt.Fingerprint + "\x00" + rt.Path))
	for _, v := range vals {
		key.Write([]byte("\x00" + v))
	}
	for _, name := range topics {
		key.Write([]byte("\x00topic\x00" + name))
	}
	var parts []part
	for i, src := range rt.Sources {
		p, err := sourceParts(src, i, vars, topics, rt.Topics != nil)
		if err != nil {
			return streamID{}, err
		}
		for _, q := range p {
			if s.controlled(q.subject) {
				return streamID{}, fmt.Errorf("subject %q is under the control subject", q.subject)
			}
			key.Write([]byte("\x00" + q.subject))
		}
		parts = append(parts, p...)
	}
	return streamID{rt: rt, rs: g.routes[rt], vals: vals, topics: topics, vars: vars, parts: parts, key: string(key.Sum(nil))}, nil
}

// topicProbes are two topic names a subject is resolved with to learn
// whether it varies by topic at all.
var topicProbes = [2]string{"ssegate-probe-a", "ssegate-probe-b"}

// sourceParts are what source i reads for a stream with variables vars
// and topics. A source whose subject does not vary by topic (on a route
// with topics) is read once, and its events belong to no one topic,
// whatever the set; one whose subject does is read per topic, and two
// topics that give it the same subject are refused, since its events
// could not say which topic they are.
func sourceParts(src sources.Spec, i int, vars *hcl.EvalContext, topics []string, byTopic bool) ([]part, error) {
	if byTopic {
		var probe [2]string
		for k, name := range topicProbes {
			var err error
			if probe[k], err = src.Subject(withTopic(vars, name)); err != nil {
				return nil, err
			}
		}
		if probe[0] == probe[1] {
			return []part{{source: i, topic: -1, subject: probe[0]}}, nil
		}
	} else {
		subject, err := src.Subject(vars)
		if err != nil {
			return nil, err
		}
		return []part{{source: i, topic: -1, subject: subject}}, nil
	}
	parts := make([]part, 0, len(topics))
	for t, name := range topics {
		subject, err := src.Subject(withTopic(vars, name))
		if err != nil {
			return nil, err
		}
		if k := slices.IndexFunc(parts, func(p part) bool { return p.subject == subject }); k >= 0 {
			return nil, fmt.Errorf("topics %q and %q make the same subject %q", topics[parts[k].topic], name, subject)
		}
		parts = append(parts, part{source: i, topic: t, subject: subject})
	}
	return parts, nil
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

// openStream is the one place a stream opens: it creates the stream id
// names, subscribes its sources and lists it among the Server's streams.
// A pinned stream (a route without path parameters or auth) is never
// freed. Called with s.mu held; the caller starts the stream's fetching
// sources and closes its ready once NATS has its subscriptions.
func (s *Server) openStream(id streamID, pinned bool) (*stream, error) {
	rs := id.rs
	st := &stream{
		key:     id.key,
		route:   id.rt,
		params:  id.vals,
		m:       rs.m,
		funcs:   id.vars.Parent(),
		parts:   id.parts,
		topics:  id.topics,
		mapCtx:  make([]atomic.Pointer[hcl.EvalContext], len(id.topics)+1),
		logs:    s.streamLogs,
		history: newHistory(id.rt.History),
		fanIn:   s.fanIn,
		idle:    &s.idle,
		epoch:   newEpoch(),
		ready:   make(chan struct{}),
		pinned:  pinned,
	}
	if err := st.subscribe(s.conns, rs.reader); err != nil {
		return nil, err
	}
	st.presence = s.presenceOf(st, id)
	s.hold(st)
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
	return s.settle(ctx, id, st, created, freed, err)
}

// settle finishes what join or place began, with s.mu let go: it frees
// the streams given up for st and returns once st's subscriptions are
// known to the NATS server (ctx ending the wait for another's).
func (s *Server) settle(ctx context.Context, id streamID, st *stream, created bool, freed []*stream, err error) (*stream, error) {
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
// frees (with s.freeing counted for each) once s.mu is let go.
func (s *Server) join(id streamID, c *Client, ip netip.Addr, lastID string, resume bool) (st *stream, created bool, freed []*stream, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, created, freed, err = s.findOrOpen(id, ip); err != nil {
		return nil, false, freed, err
	}
	st.join(c, lastID, resume)
	if created {
		// After the join: the first client gets the first fetch.
		s.startStreamFeeds(st, id.vars)
	}
	s.handlers.Add(1)
	return st, created, freed, nil
}

// place finds or opens the stream id names for a client at address ip
// that is still to come: one that read the stream's position (see
// servePosition). A stream without a client lingers from now, so that
// the client finds it, and its history, within the route's linger.
func (s *Server) place(ctx context.Context, id streamID, ip netip.Addr) (*stream, error) {
	s.mu.Lock()
	st, created, freed, err := s.findOrOpen(id, ip)
	if err == nil {
		if created {
			s.startStreamFeeds(st, id.vars)
		}
		st.lingerAgain(func(gen uint64) { s.freeAfterLinger(st, gen) })
	}
	s.mu.Unlock()
	return s.settle(ctx, id, st, created, freed, err)
}

// findOrOpen finds the stream id names, or opens it for a client at
// address ip; freed are the lingering streams given up to make room
// (see join). Called with s.mu held.
func (s *Server) findOrOpen(id streamID, ip netip.Addr) (st *stream, created bool, freed []*stream, err error) {
	if s.stopping {
		return nil, false, nil, errClosing
	}
	if st = s.streams[id.key]; st != nil {
		return st, false, nil, nil
	}
	if id.rs == nil || id.rs.ended {
		return nil, false, nil, errReloaded
	}
	if !s.limits.newStream(ip) {
		return nil, false, nil, errNewStreamsRate
	}
	if freed, err = s.makeRoom(id.rt, weight(id.topics)); err != nil {
		return nil, false, freed, err
	}
	if st, err = s.openStream(id, false); err != nil {
		return nil, false, freed, err
	}
	return st, true, freed, nil
}

// leave is the one place a client's end takes it out of its stream st,
// once its last write is done: the stream lingers if c was its last
// client, the limits get c's slots back (giveBack), and Shutdown stops
// waiting for it.
func (s *Server) leave(st *stream, c *Client, giveBack func(), remote, why string) {
	st.leave(c, func(gen uint64) { s.freeAfterLinger(st, gen) })
	if c.present {
		s.announce(st, c, "leave")
	}
	s.forgetEnded(st)
	giveBack()
	s.log.Debug().Str("route", st.route.Path).Str("remote", remote).Msg(why)
	s.handlers.Done()
}

// errStreamsFull refuses a new stream when every stream max_streams
// allows is open: none lingers to be given up for it.
var errStreamsFull = &refusal{http.StatusServiceUnavailable, "server at max_streams; retry later"}

// errNewStreamsRate refuses a new stream to an address that opened more
// than new_streams_per_ip of them a second.
var errNewStreamsRate = &refusal{http.StatusTooManyRequests, "too many new streams from your address (new_streams_per_ip)"}

// weight is what a stream counts for against max_streams: one, or one
// per topic, since each topic costs about what a stream of its own does
// (its subscription, its part of the key and the mapping contexts).
func weight(topics []string) int { return max(1, len(topics)) }

// makeRoom gives up the streams idle the longest until a new stream of
// rt, of weight w, fits max_streams, in all and on rt, and returns them;
// called with s.mu held. Their history goes with them: a client resuming
// from it later gets ResetEvent. An open stream is never given up.
func (s *Server) makeRoom(rt *config.Route, w int) ([]*stream, error) {
	var freed []*stream
	for {
		onRoute := false
		switch {
		case s.held+w > s.config().MaxStreams:
		case rt.MaxStreams > 0 && s.perRoute[rt]+w > rt.MaxStreams:
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
		s.freeing.Add(1)
		freed = append(freed, victim)
	}
}

// hold lists st among the Server's streams; called with s.mu held.
func (s *Server) hold(st *stream) {
	s.streams[st.key] = st
	w := weight(st.topics)
	s.held += w
	s.perRoute[st.route] += w
}

// drop takes st out of the Server's streams; called with s.mu held.
func (s *Server) drop(st *stream) {
	delete(s.streams, st.key)
	w := weight(st.topics)
	s.held -= w
	if s.perRoute[st.route] -= w; s.perRoute[st.route] <= 0 {
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
		s.freeing.Done()
		st.debug().Msg("lingering stream given up for a new one (max_streams)")
	}
}

// freeAfterLinger frees st if no client joined since its last one left (gen).
// A stream that Shutdown has taken out of the map is Shutdown's to close.
func (s *Server) freeAfterLinger(st *stream, gen uint64) {
	s.mu.Lock()
	st.mu.Lock()
	free := s.streams[st.key] == st && st.gen == gen && len(st.clients) == 0
	if free {
		st.closed = true
		s.freeing.Add(1)
	}
	st.mu.Unlock()
	if free {
		s.drop(st)
	}
	s.mu.Unlock()
	if free {
		defer s.freeing.Done()
		st.unsubscribe()
		st.debug().Msg("stream freed after linger")
	}
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
