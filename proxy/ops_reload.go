package proxy

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/ssegate/ssegate/proxy/auth"
	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/sources"
)

// snapshot is what one config makes of a Server: its handlers,
// authenticators and per-route state. Reload builds the next snapshot,
// reusing what did not change, and swaps it in whole, so a request sees
// one config or the other, never a mix.
type snapshot struct {
	cfg    *config.Config
	mux    *http.ServeMux
	auths  map[string]*authState
	routes map[*config.Route]*routeState
}

// authState is an auth block's authenticator.
type authState struct {
	fingerprint string
	au          auth.Authenticator
	tickets     http.Handler       // its ticket endpoint, or nil
	stop        context.CancelFunc // ends its key-set refresh, if any
	// stripQuery: a forward block hides these query parameters (every
	// jwt block's) from its auth service, so it is rebuilt when they
	// change.
	stripQuery []string
}

// routeState is what a route has beyond its config.
type routeState struct {
	reader  *jsReader      // reads its JetStream history, or nil
	m       *routeMetrics  // its counters
	ingress []http.Handler // its webhooks' handlers, by source (nil for others)

	feeds feedGroup // its route-wide fetching sources
	// ended is set, under the Server's mu, once a reload removed the
	// route: no stream of it may open after endRoute looked for them.
	ended bool
}

// snapshot is the current config snapshot.
func (s *Server) snapshot() *snapshot { return s.current.Load() }

// config is the current config.
func (s *Server) config() *config.Config { return s.snapshot().cfg }

// build makes the snapshot of cfg. Routes and auth blocks that prev has
// with the same fingerprint are kept as they are: cfg.Routes then points
// at prev's routes, so their streams, webhook de-duplication and counters
// go on. The JetStream streams of new and changed routes are made or
// updated last, once everything else was built: on error before that step
// nothing of prev has changed, and during it, only the streams already
// updated.
func (s *Server) build(cfg *config.Config, prev *snapshot) (*snapshot, error) {
	g := &snapshot{cfg: cfg, mux: http.NewServeMux(), auths: map[string]*authState{}, routes: map[*config.Route]*routeState{}}
	kept := map[string]*config.Route{}
	var durable []*config.Route // new routes whose JetStream stream is made last
	if prev != nil {
		for rt := range prev.routes {
			kept[rt.Path+"\x00"+rt.Fingerprint] = rt
		}
	}
	var built []*authState // undone on error
	fail := func(err error) (*snapshot, error) {
		for _, a := range built {
			a.stop()
		}
		return nil, err
	}
	for name, a := range cfg.Auths {
		if prev != nil {
			if old := prev.auths[name]; old != nil && old.fingerprint == a.Fingerprint && slices.Equal(old.stripQuery, stripQueryOf(cfg, a)) {
				g.auths[name] = old
				continue
			}
		}
		st, err := s.buildAuth(cfg, name, a)
		if err != nil {
			return fail(err)
		}
		built = append(built, st)
		g.auths[name] = st
	}
	for i, rt := range cfg.Routes {
		if old := kept[rt.Path+"\x00"+rt.Fingerprint]; old != nil {
			cfg.Routes[i] = old
			g.routes[old] = prev.routes[old]
			continue
		}
		g.routes[rt] = &routeState{m: s.metrics.route(rt), ingress: make([]http.Handler, len(rt.Sources))}
		if rt.JetStream != nil {
			durable = append(durable, rt)
		}
	}
	for _, rt := range cfg.Routes {
		rs := g.routes[rt]
		g.mux.Handle("GET "+rt.Path, s.routeHandler(rt))
		if rt.CORS != nil {
			g.mux.Handle("OPTIONS "+rt.Path, s.preflight(rt.CORS, http.MethodGet, http.MethodHead))
		}
		for i, src := range rt.Sources {
			in, ok := src.(sources.Ingress)
			if !ok {
				continue
			}
			if rs.ingress[i] == nil {
				// One handler for all its methods: one de-duplication window.
				log := s.log.With().Str("route", rt.Path).Int("source", i).Logger()
				rs.ingress[i] = in.Handler(s.publisher(rt), log, s.metrics.webhookAnswered(rt))
			}
			for _, p := range in.Patterns() {
				g.mux.Handle(p, rs.ingress[i])
			}
		}
	}
	for _, a := range cfg.Auths {
		if a.Ticket == nil {
			continue
		}
		g.mux.Handle("POST "+a.Ticket.Path, s.withCORS(cfg.CORS, g.auths[a.Name].tickets))
		if cfg.CORS != nil {
			g.mux.Handle("OPTIONS "+a.Ticket.Path, s.preflight(cfg.CORS, http.MethodPost))
		}
	}
	for _, p := range cfg.Pages {
		g.mux.Handle(p.Pattern(), servePage(p))
	}
	for _, rt := range durable {
		name, subjects, err := s.setupJetStream(cfg, rt)
		if err != nil {
			return fail(fmt.Errorf("route %q: JetStream history: %w", rt.Path, err))
		}
		g.routes[rt].reader = newJSReader(s.conns, name, subjects, rt.JetStream.Stream == "", s.warn.With().Str("route", rt.Path).Logger(), s.closing)
	}
	return g, nil
}

// buildAuth makes the authenticator of auth block a.
func (s *Server) buildAuth(cfg *config.Config, name string, a *config.Auth) (*authState, error) {
	ctx, stop := context.WithCancel(context.Background())
	st := &authState{fingerprint: a.Fingerprint, stop: stop}
	switch a.Kind {
	case "bearer":
		st.au = auth.NewBearer(a.Tokens)
	case "jwt":
		jc := *a.JWT
		jc.HTTP = s.http
		j, err := auth.NewJWT(ctx, jc, s.log.With().Str("auth", name).Logger())
		if err != nil {
			stop()
			return nil, fmt.Errorf("auth %q: %w", name, err)
		}
		st.au = j
	case "forward":
		fc := *a.Forward
		fc.HTTP = s.http
		fc.StripQuery = stripQueryOf(cfg, a)
		st.au = auth.NewForward(fc)
		st.stripQuery = fc.StripQuery
	}
	if a.Ticket != nil {
		t := auth.NewTickets(st.au, a.Ticket.TTL)
		st.au, st.tickets = t, t
	}
	return st, nil
}

// stripQueryOf is what forward block a hides from its auth service.
func stripQueryOf(cfg *config.Config, a *config.Auth) []string {
	if a.Kind != "forward" {
		return nil
	}
	return credentialParams(cfg)
}

// startRoute starts what runs for rt as a whole: its route-wide fetching
// sources and, for a route whose one stream needs no client's path,
// topics or claims, that stream, so its history starts now.
func (s *Server) startRoute(g *snapshot, rt *config.Route) error {
	s.startRouteFeeds(g, rt)
	if len(rt.Params) > 0 || len(rt.Auth) > 0 || rt.Topics != nil {
		return nil
	}
	id, err := s.identify(g, rt, nil, nil, streamVars(g, rt, nil, cty.NilVal))
	if err != nil {
		return fmt.Errorf("route %q: %w", rt.Path, err)
	}
	s.mu.Lock()
	st, err := s.openStream(id, true)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("route %q: %w", rt.Path, err)
	}
	s.startStreamFeeds(st, id.vars)
	close(st.ready)
	return nil
}

// reloadRetry is the retry hint, before jitter, for the streams of a route
// a reload removed or changed: they come back at once to the new one.
const reloadRetry = 500 * time.Millisecond

// Reload applies cfg, as config.Load returns it, without dropping the
// clients of routes that did not change: their streams, histories and
// sources go on. Added routes start; the streams of removed and changed
// routes end with a retry hint (clients reconnect, and find the new
// route), and their sources stop; auth blocks are rebuilt only when they
// changed, so outstanding tickets survive. The NATS connection, the
// listeners, TLS, the admin block and logging cannot change without a
// restart: a change to them is logged and left for it. When the new
// config cannot be applied (a JetStream stream cannot be made, say) Reload
// returns why and the old config goes on.
func (s *Server) Reload(cfg *config.Config) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	s.mu.Lock()
	stopping := s.stopping
	s.mu.Unlock()
	if stopping {
		return errClosing
	}
	prev := s.snapshot()
	s.warnRestartOnly(s.startCfg, cfg)
	next, err := s.build(cfg, prev)
	if err != nil {
		return err
	}
	var added, removed []*config.Route
	for _, rt := range cfg.Routes {
		if prev.routes[rt] == nil {
			added = append(added, rt)
		}
	}
	for _, rt := range prev.cfg.Routes {
		if next.routes[rt] == nil {
			removed = append(removed, rt)
		}
	}
	for i, rt := range added {
		if err := s.startRoute(next, rt); err != nil {
			for _, started := range added[:i+1] {
				s.endRoute(next, started)
			}
			stopAuthsNotIn(next.auths, prev.auths)
			return err
		}
	}
	s.limits.update(cfg)
	s.current.Store(next)
	for _, rt := range removed {
		s.endRoute(prev, rt)
	}
	stopAuthsNotIn(prev.auths, next.auths)
	s.metrics.forgetRoutes(prev.cfg, cfg)
	s.log.Info().Int("routes", len(cfg.Routes)).Int("kept", len(cfg.Routes)-len(added)).
		Int("added", len(added)).Int("removed", len(removed)).Msg("config reloaded")
	return nil
}

// stopAuthsNotIn stops the authenticators of from that to does not share.
func stopAuthsNotIn(from, to map[string]*authState) {
	for name, a := range from {
		if to[name] != a {
			a.stop()
		}
	}
}

// endRoute stops rt's sources and ends its streams with a retry hint.
func (s *Server) endRoute(g *snapshot, rt *config.Route) {
	rs := g.routes[rt]
	rs.feeds.halt()
	s.mu.Lock()
	rs.ended = true
	var ending []*stream
	for _, st := range s.streams {
		if st.route == rt {
			ending = append(ending, st)
		}
	}
	for _, st := range ending {
		s.drop(st)
	}
	// Their clients write their last frames a while yet: Shutdown's hurry
	// must reach them. Each is let go with its last client.
	for _, st := range ending {
		if !st.empty() {
			s.ended[st] = struct{}{}
		}
	}
	s.mu.Unlock()
	bye := reconnectFrame(rt, reloadRetry, "route changed; reconnect")
	for _, st := range ending {
		st.end(bye, "stream ended: its route changed")
		st.unsubscribe()
	}
}

// warnRestartOnly logs the settings that changed but only apply at the
// next start.
func (s *Server) warnRestartOnly(old, cfg *config.Config) {
	for _, x := range []struct {
		name string
		same bool
	}{
		{"listen", old.Listen == cfg.Listen},
		{"tls", reflect.DeepEqual(old.TLS, cfg.TLS)},
		{"h2c", old.H2C == cfg.H2C},
		{"nats", reflect.DeepEqual(old.NATS, cfg.NATS)},
		{"admin", reflect.DeepEqual(old.Admin, cfg.Admin)},
		{"log", old.Log == cfg.Log},
	} {
		if !x.same {
			s.log.Warn().Str("setting", x.name).Msg("changed in the config; it applies at the next restart, not on reload")
		}
	}
}
