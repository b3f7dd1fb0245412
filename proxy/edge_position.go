package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// Position is the answer to a position request: the id to resume the
// stream from, so that a client gets exactly what happened after it was
// read. See docs/control.md, "A page load with no gap".
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
