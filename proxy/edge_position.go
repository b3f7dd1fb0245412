package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ssegate/ssegate/proxy/auth"
	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/sources"
)

// Position is the answer to a position request: the id to resume the
// stream from, so that a client gets exactly what happened after it was
// read. See docs/positions.md.
type Position struct {
	LastEventID string `json:"last_event_id"`
	// Store is where the stream's history is: "jetstream" (the position
	// holds on every replica for as long as JetStream keeps the events)
	// or "memory" (it holds on the replica that answered while the
	// stream is held there: a client comes within the route's linger).
	Store string `json:"store"`
}

// wantsPosition reports whether a request on a route asks for its
// stream's position rather than the stream: a GET that accepts JSON and
// not an event stream (EventSource always asks for one).
func wantsPosition(r *http.Request) bool {
	return r.Method == http.MethodGet && accepts(r, "application/json") && !acceptsEventStream(r)
}

// servePosition answers a position request for the stream id names, from
// a client at address ip, which passed the route's auth and allow as a
// stream request does.
func (s *Server) servePosition(w http.ResponseWriter, r *http.Request, id streamID, ip netip.Addr) {
	ctx, cancel := context.WithTimeout(r.Context(), jsTimeout)
	defer cancel()
	pos, err := s.position(ctx, id, ip)
	var refused *refusal
	switch {
	case errors.As(err, &refused):
		s.comeBackLater(w, r, id.rt, refused.status, refused.reason)
	case errors.Is(err, errReloaded):
		s.comeBackIn(w, r, reloadRetry, http.StatusServiceUnavailable, "route reloaded; retry")
	case err != nil:
		if !errors.Is(err, errClosing) {
			s.warn.Warn().Err(err).Str("route", id.rt.Path).Msg("position not read")
		}
		s.comeBackLater(w, r, id.rt, http.StatusServiceUnavailable, "unavailable: "+err.Error())
	default:
		writeJSON(w, http.StatusOK, pos)
	}
}

// position reads the position of the stream id names. With a JetStream
// history it is the JetStream stream's last sequence, alike on every
// replica; otherwise the stream is found or opened here without a client
// (counted against max_streams and new_streams_per_ip as an opening is)
// and lingers, and the position is its last event's id.
func (s *Server) position(ctx context.Context, id streamID, ip netip.Addr) (Position, error) {
	if id.rs == nil {
		return Position{}, errReloaded
	}
	if r := id.rs.reader; r != nil {
		state, err := r.state(ctx)
		if err != nil {
			return Position{}, err
		}
		// What follows it on the stream's own subjects is what a resume
		// from it replays.
		return Position{LastEventID: strconv.FormatUint(state.LastSeq, 10), Store: "jetstream"}, nil
	}
	st, err := s.place(ctx, id, ip)
	if err != nil {
		return Position{}, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	last := st.history.lastID()
	if last == "" {
		last = st.origin()
	}
	return Position{LastEventID: last, Store: "memory"}, nil
}

// state is the JetStream stream's state now (its first and last
// sequences, across the route's subjects), asked of its leader while the
// cluster is busy or electing, until ctx ends.
func (r *jsReader) state(ctx context.Context) (jetstream.StreamState, error) {
	var state jetstream.StreamState
	err := retryJS(ctx, func(ctx context.Context) error {
		info, err := r.conns.JS().Stream(ctx, r.name)
		if err == nil {
			state = info.CachedInfo().State
		}
		return err
	})
	if err != nil {
		return state, fmt.Errorf("stream %s: %w", r.name, err)
	}
	return state, nil
}

// StreamRef names a stream from the backend's side, as a client's request
// would make it: a route as configured, its path values, topics and, on a
// route with auth, the claims of the user it is for.
type StreamRef struct {
	Route  string            `json:"route"`
	Params map[string]string `json:"params,omitempty"`
	Topics []string          `json:"topics,omitempty"`
	Claims map[string]any    `json:"claims,omitempty"`
}

// Position reads the position of the stream ref names, as a position
// request does (see Position), for a backend: on a route with auth, ref's
// claims stand for the user's credentials and must pass allow.
func (s *Server) Position(ctx context.Context, ref StreamRef) (Position, error) {
	id, err := s.identifyRef(ref, true)
	if err != nil {
		return Position{}, err
	}
	return s.position(ctx, id, netip.Addr{})
}

// identifyRef names the stream ref does, as for a client with ref's
// claims; with allow, the route's allow must let them in.
func (s *Server) identifyRef(ref StreamRef, allow bool) (streamID, error) {
	g := s.snapshot()
	i := slices.IndexFunc(g.cfg.Routes, func(rt *config.Route) bool { return rt.Path == ref.Route })
	if i < 0 {
		return streamID{}, fmt.Errorf("no route %q", ref.Route)
	}
	rt := g.cfg.Routes[i]
	vals := make([]string, len(rt.Params))
	for k, p := range rt.Params {
		vals[k] = ref.Params[p]
		if !sources.ValidToken(vals[k]) {
			return streamID{}, fmt.Errorf("path parameter %s = %.64q cannot stand in a NATS subject", p, vals[k])
		}
	}
	var topics []string
	if rt.Topics != nil {
		var err error
		if topics, err = checkTopics(ref.Topics, rt.Topics); err != nil {
			return streamID{}, err
		}
	}
	if allow {
		id, _, err := s.identifyClient(g, rt, vals, topics, &auth.Identity{Claims: ref.Claims})
		return id, err
	}
	vars, err := clientVars(g, rt, vals, ref.Claims)
	if err != nil {
		return streamID{}, err
	}
	return s.identify(g, rt, vals, topics, vars)
}
