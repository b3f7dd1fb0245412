package proxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/ssegate/ssegate/proxy/auth"
	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/proxy/sse"
	"github.com/ssegate/ssegate/sources"
)

// endOfLifeRetry is the retry hint, before jitter, for a stream ended by
// max_stream_duration on a route that configures none.
const endOfLifeRetry = time.Second

var (
	authExpiredFrame = mustEncode(AuthExpiredEvent, `{"reason":"token expired"}`)
	keepaliveLine    = sse.AppendComment(nil, "keepalive")
	shutdownLine     = sse.AppendComment(nil, "ssegate is shutting down; reconnect")
)

func mustEncode(name, data string) []byte {
	e, err := sse.NewEvent(name, data)
	if err != nil {
		panic(err)
	}
	return e.Encode()
}

// routeHandler answers stream requests for one route.
func (s *Server) routeHandler(rt *config.Route) http.HandlerFunc {
	count := func(result string) { s.metrics.connections.WithLabelValues(rt.Path, result).Inc() }
	return func(w http.ResponseWriter, r *http.Request) {
		// The request keeps the generation it started in: a reload that
		// replaces rt meanwhile does not mix two configs in one answer.
		g := s.gen()
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
				http.Error(w, fmt.Sprintf("path parameter %s = %q cannot stand in a NATS subject: no dots, wildcards, white space or control characters", p, v), http.StatusBadRequest)
				return
			}
			vals[i] = v
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
		id, err := s.identifyClient(g, rt, vals, who)
		if err == nil {
			err = allowed(rt, id)
		}
		if err != nil {
			// Path values are checked above, so what fails here is what the
			// client's claims let it do. The details are the operator's: a
			// claim the route expects and the token lacks, or a "*" in a
			// claim, says nothing the client should learn of the config.
			if errors.Is(err, errNotAllowed) {
				s.log.Debug().Str("route", rt.Path).Str("remote", r.RemoteAddr).Msg("stream not allowed")
			} else {
				s.warn.Warn().Err(err).Str("route", rt.Path).Msg("credentials do not fit the route")
			}
			count(connForbidden)
			http.Error(w, "forbidden: "+errNotAllowed.Error(), http.StatusForbidden)
			return
		}
		if r.Method == http.MethodHead {
			setStreamHeaders(w)
			w.WriteHeader(http.StatusOK)
			return
		}

		release, refused := s.limits.acquire(rt, limitKey(clientIP(r, s.config().TrustedProxies)))
		if refused != nil {
			s.log.Debug().Str("route", rt.Path).Str("remote", r.RemoteAddr).Str("reason", refused.reason).Msg("stream refused")
			count(connLimit)
			s.comeBackLater(w, r, rt, refused.status, refused.reason)
			return
		}
		defer release()

		c := newClient(r, rt.Buffer)
		if s.onConnect != nil {
			s.onConnect(c)
		}
		lastID, resume := lastEventID(r)
		st, err := s.attach(r.Context(), id, c, lastID, resume)
		if err != nil {
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
		defer s.handlers.Done()
		defer st.leave(c, func(gen uint64) { s.release(st, gen) })
		// A ticket is spent only now that the stream starts: a client
		// turned away above comes back with the same one.
		if who.Consume != nil && !who.Consume() {
			count(connUnauthorized)
			w.Header().Set("WWW-Authenticate", `Bearer realm="ssegate"`)
			http.Error(w, "unauthorized: ticket unknown, used or expired", http.StatusUnauthorized)
			return
		}
		count(connAccepted)
		setStreamHeaders(w)
		s.stream(w, r, rt, rs.m, c, who.Expires)
	}
}

// identifyClient names the stream of a client with path values vals.
func (s *Server) identifyClient(g *generation, rt *config.Route, vals []string, who *auth.Identity) (streamID, error) {
	claims := cty.NilVal
	if len(rt.Auth) > 0 {
		var err error
		if claims, err = claimsValue(who.Claims); err != nil {
			return streamID{}, fmt.Errorf("claims: %w", err)
		}
	}
	return s.identify(g, rt, vals, claims)
}

// retryOr is the route's retry hint, or d when it sets none.
func retryOr(rt *config.Route, d time.Duration) time.Duration {
	if rt.Retry > 0 {
		return rt.Retry
	}
	return d
}

func setStreamHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
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

// reconnectFrame is the end of a stream its client should come back to at
// once: a retry hint of about d (rt's, if it sets one) and a comment.
func reconnectFrame(rt *config.Route, d time.Duration, why string) []byte {
	return sse.AppendComment(sse.AppendRetry(nil, jitter(retryOr(rt, d))), why)
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

// stream writes c's frames to w until the client goes, is dropped, or the
// server shuts down. Keepalive comments go out only when nothing else has
// for a keepalive period.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, rt *config.Route, m *routeMetrics, c *Client, expires time.Time) {
	rc := http.NewResponseController(w)
	log := s.log.With().Str("route", rt.Path).Str("remote", r.RemoteAddr).Logger()
	// When Shutdown runs short of time, a write blocked on a client that
	// does not read fails now rather than at write_timeout.
	defer context.AfterFunc(s.hurry, func() { _ = rc.SetWriteDeadline(time.Now()) })()
	write := func(frames ...[]byte) error {
		// Middleware that hides the connection cannot set deadlines; the
		// stream still works, it just relies on TCP to notice a dead peer.
		err := rc.SetWriteDeadline(time.Now().Add(rt.WriteTimeout))
		if err == nil && s.hurry.Err() != nil {
			// Checked after setting, so that a concurrent hurry is not undone.
			err = rc.SetWriteDeadline(time.Now())
		}
		if err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		err, written := nil, 0
		for _, f := range frames {
			var n int
			n, err = w.Write(f)
			written += n
			if err != nil {
				break
			}
		}
		m.bytes.Add(float64(written))
		if err != nil {
			return err
		}
		return rc.Flush()
	}

	// last writes what is queued and then frame, the end of the stream;
	// events counts the frames of frame that are events.
	last := func(frame []byte, events int) {
		batch := c.take(nil)
		if write(append(batch, frame)...) == nil {
			m.delivered.Add(float64(len(batch) + events))
		}
	}

	w.WriteHeader(http.StatusOK)
	var head []byte
	if rt.Retry > 0 {
		head = sse.AppendRetry(head, rt.Retry)
	}
	if err := write(head); err != nil {
		log.Debug().Err(err).Msg("client lost")
		return
	}
	log.Debug().Msg("client connected")

	var keepalive <-chan time.Time
	var timer *time.Timer
	if rt.Keepalive > 0 {
		timer = time.NewTimer(rt.Keepalive)
		defer timer.Stop()
		keepalive = timer.C
	}
	// A stream that must end after max_stream_duration ends somewhere in
	// its last fifth, so clients that came together do not all come back
	// together; they resume from where they were.
	var lifetime <-chan time.Time
	if d := rt.MaxStreamDuration; d > 0 {
		t := time.NewTimer(d - rand.N(d/5+1))
		defer t.Stop()
		lifetime = t.C
	}
	var expiry <-chan time.Time
	if !expires.IsZero() {
		t := time.NewTimer(time.Until(expires))
		defer t.Stop()
		expiry = t.C
	}
	var spare [][]byte
	for {
		var err error
		select {
		case <-r.Context().Done():
			log.Debug().Msg("client left")
			return
		case <-c.ended:
			// Its route was reloaded away: what is queued, then the hint.
			last(c.final, 0)
			log.Debug().Msg("stream ended: its route changed")
			return
		case <-c.left:
			m.queueFull.Inc()
			log.Debug().Msg("slow client dropped: its queue overflowed")
			return
		case <-s.closing:
			// The subscriptions are drained: what is queued is all there
			// is, and goes out before the goodbye.
			last(shutdownLine, 0)
			return
		case <-expiry:
			last(authExpiredFrame, 1)
			log.Debug().Msg("stream closed: its token expired")
			return
		case <-lifetime:
			last(reconnectFrame(rt, endOfLifeRetry, "max_stream_duration reached; reconnect"), 0)
			log.Debug().Msg("stream ended at max_stream_duration")
			return
		case <-c.wake:
			batch := c.take(spare)
			err = write(batch...)
			if err == nil {
				m.delivered.Add(float64(len(batch)))
			}
			clear(batch)
			spare = batch
		case <-keepalive:
			err = write(keepaliveLine)
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && s.hurry.Err() == nil {
				m.writeTimeout.Inc()
				log.Debug().Err(err).Msg("slow client dropped: a write timed out")
				return
			}
			log.Debug().Err(err).Msg("client lost")
			return
		}
		if timer != nil {
			timer.Reset(rt.Keepalive)
		}
	}
}
