package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ssegate/ssegate/proxy/auth"
	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/sources"
	"github.com/ssegate/ssegate/sse"
)

// routeHandler answers stream requests for one route.
func (s *Server) routeHandler(rt *config.Route) http.HandlerFunc {
	count := func(result string) { s.metrics.connections.WithLabelValues(rt.Path, result).Inc() }
	return func(w http.ResponseWriter, r *http.Request) {
		// The request keeps the config snapshot it started in: a reload that
		// replaces rt meanwhile does not mix two configs in one answer.
		g := s.snapshot()
		rs := g.routes[rt]
		if rs == nil {
			count(connUnavailable)
			s.comeBackIn(w, r, reloadRetry, http.StatusServiceUnavailable, "route reloaded; retry")
			return
		}
		s.allowOrigin(w, r, rt.CORS)
		vals := make([]string, len(rt.Params))
		for i, p := range rt.Params {
			v := r.PathValue(p)
			if !sources.ValidToken(v) {
				count(connBadRequest)
				http.Error(w, fmt.Sprintf("path parameter %s = %.64q cannot stand in a NATS subject: at most %d bytes in NFC form, no dots, wildcards, white space or control characters", p, v, sources.MaxTokenLength), http.StatusBadRequest)
				return
			}
			vals[i] = v
		}
		var topics []string
		if rt.Topics != nil {
			var err error
			if topics, err = pickTopics(r, rt.Topics); err != nil {
				count(connBadRequest)
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		if s.verify != nil && !s.verify(r) {
			count(connForbidden)
			http.Error(w, "forbidden: the request was refused", http.StatusForbidden)
			return
		}
		who, ok := s.authenticate(g, w, r, rt)
		if !ok {
			return
		}
		id, refusedTopics, err := s.identifyClient(g, rt, vals, topics, who)
		var notThisTopic *topicRefused
		switch {
		case errors.As(err, &notThisTopic):
			count(connForbidden)
			http.Error(w, "forbidden: "+err.Error(), http.StatusForbidden)
			return
		case errors.Is(err, errBadSubject) && len(rt.Auth) == 0:
			// Each path value and topic is a valid token, but together
			// they can still make a subject NATS must not be sent (too
			// long).
			count(connBadRequest)
			http.Error(w, "these path parameters and topics make an invalid NATS subject: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err != nil {
			// What fails here is what the client's claims let it do. The
			// details are the operator's: a claim the route expects and
			// the token lacks, or a "*" in a claim, says nothing the
			// client should learn of the config.
			if errors.Is(err, errNotAllowed) {
				s.log.Debug().Str("route", rt.Path).Str("remote", r.RemoteAddr).Msg("stream not allowed")
			} else {
				s.warn.Warn().Err(err).Str("route", rt.Path).Msg("credentials do not fit the route")
			}
			count(connForbidden)
			http.Error(w, "forbidden: "+errNotAllowed.Error(), http.StatusForbidden)
			return
		}
		ip := limitKey(clientIP(r, s.config().TrustedProxies))
		if wantsPosition(r) {
			s.servePosition(w, r, id, ip)
			return
		}
		if r.Method == http.MethodHead {
			setStreamHeaders(w)
			w.WriteHeader(http.StatusOK)
			return
		}

		// A limit full: the client comes back later.
		turnAway := func(refused *refusal) {
			s.log.Debug().Str("route", rt.Path).Str("remote", r.RemoteAddr).Str("reason", refused.reason).Msg("stream refused")
			count(connLimit)
			s.comeBackLater(w, r, rt, refused.status, refused.reason)
		}
		giveBack, refused := s.limits.acquire(rt, ip)
		if refused != nil {
			turnAway(refused)
			return
		}

		// Only a hook can reach the client to read its request; without
		// one, an idle stream does not keep the request (a kilobyte with
		// its headers).
		c := newClient(nil, rt.Buffer)
		c.dropOldest = rt.SlowConsumer != config.Disconnect
		c.conflate = rt.SlowConsumer == config.Latest
		if len(rt.Auth) > 0 {
			c.claims = who.Claims
		}
		if len(refusedTopics) > 0 {
			_ = c.Send(refusedTopicsEvent(refusedTopics)) // a new client takes it
		}
		if s.onConnect != nil {
			c.req = r
			s.onConnect(c)
		}
		lastID, resume := lastEventID(r)
		st, err := s.attach(r.Context(), id, c, ip, lastID, resume)
		if err != nil {
			giveBack()
			c.discard(rs.m)
			if errors.As(err, &refused) {
				turnAway(refused)
				return
			}
			count(connUnavailable)
			if errors.Is(err, errReloaded) {
				s.comeBackIn(w, r, reloadRetry, http.StatusServiceUnavailable, "route reloaded; retry")
				return
			}
			if !errors.Is(err, errClosing) {
				s.warn.Warn().Err(err).Str("route", rt.Path).Msg("stream refused")
			}
			s.comeBackLater(w, r, rt, http.StatusServiceUnavailable, "unavailable: "+err.Error())
			return
		}
		remote := r.RemoteAddr
		o := &writer{hurry: s.hurry, rt: rt, m: rs.m, end: func(why string) { s.leave(st, c, giveBack, remote, why) }}
		// A ticket is spent only now that the stream starts: a client
		// turned away above comes back with the same one.
		if who.Consume != nil && !who.Consume() {
			c.fail(o, "ticket refused")
			count(connUnauthorized)
			w.Header().Set("WWW-Authenticate", `Bearer realm="ssegate"`)
			http.Error(w, "unauthorized: ticket unknown, used or expired", http.StatusUnauthorized)
			return
		}
		count(connAccepted)
		if c.present = st.presence != ""; c.present {
			s.announce(st, c, "join")
		}
		setStreamHeaders(w)
		s.serve(w, r, o, c, who.Expires)
	}
}

// errBadSubject is a stream whose path values, topics or claims make a
// subject NATS must not be sent.
var errBadSubject = errors.New("invalid subject")

// identifyClient names the stream of a client with path values vals and
// topics, once the route's allow let it in: the whole request, or each
// topic (it returns those refused on a route that drops them).
func (s *Server) identifyClient(g *snapshot, rt *config.Route, vals, topics []string, who *auth.Identity) (id streamID, refused []string, err error) {
	vars, err := clientVars(g, rt, vals, who.Claims)
	if err != nil {
		return streamID{}, nil, err
	}
	if rt.Topics != nil {
		topics, refused, err = allowTopics(rt, vars, topics)
	} else {
		err = allowed(rt, vars)
	}
	if err != nil {
		return streamID{}, nil, err
	}
	if id, err = s.identify(g, rt, vals, topics, vars); err != nil {
		return streamID{}, nil, fmt.Errorf("%w: %w", errBadSubject, err)
	}
	return id, refused, nil
}

// retryOr is the route's retry hint, or d when it sets none.
func retryOr(rt *config.Route, d time.Duration) time.Duration {
	if rt.Retry > 0 {
		return rt.Retry
	}
	return d
}

// lastEventID is where a resuming client says what it saw last: the header
// EventSource sends, or a query parameter for clients that cannot set one.
func lastEventID(r *http.Request) (string, bool) {
	// EventSource sends no header before its first event; an empty one, from
	// other clients, says the same.
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		return v, true
	}
	if v := r.URL.Query().Get("lastEventId"); v != "" {
		return v, true
	}
	return "", false
}

// comeBackLater answers a stream that cannot be served now. EventSource
// gives up for good on any status but 200, so it gets 200, a jittered
// retry hint, a comment saying why, and the end of the stream: it comes
// back later, and not all at once. Other clients get status with
// Retry-After.
func (s *Server) comeBackLater(w http.ResponseWriter, r *http.Request, rt *config.Route, status int, reason string) {
	s.comeBackIn(w, r, retryOr(rt, comeBackLaterDelay), status, reason)
}

// comeBackIn is comeBackLater with a retry hint of about d.
func (s *Server) comeBackIn(w http.ResponseWriter, r *http.Request, d time.Duration, status int, reason string) {
	retry := jitter(d)
	if !acceptsEventStream(r) {
		w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
		http.Error(w, reason, status)
		return
	}
	setStreamHeaders(w)
	b := sse.AppendRetry(nil, retry)
	b = sse.AppendComment(b, reason)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// comeBackLaterDelay is the retry hint, before jitter, for a stream that
// is refused for now (limits, shutdown, NATS gone) on a route that
// configures none.
const comeBackLaterDelay = 5 * time.Second
