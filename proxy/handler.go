package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/proxy/sse"
	"github.com/ssegate/ssegate/sources"
)

var (
	keepaliveLine = sse.AppendComment(nil, "keepalive")
	shutdownLine  = sse.AppendComment(nil, "ssegate is shutting down; reconnect")
)

// routeHandler answers stream requests for one route.
func (s *Server) routeHandler(rt *config.Route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		vals := make([]string, len(rt.Params))
		for i, p := range rt.Params {
			v := r.PathValue(p)
			if !sources.ValidToken(v) {
				http.Error(w, fmt.Sprintf("path parameter %s = %q cannot stand in a NATS subject: no dots, wildcards, white space or control characters", p, v), http.StatusBadRequest)
				return
			}
			vals[i] = v
		}
		if s.verify != nil && !s.verify(r) {
			http.Error(w, "forbidden: the request was refused", http.StatusForbidden)
			return
		}

		h := w.Header()
		h.Set("Content-Type", "text/event-stream; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusOK)
			return
		}

		c := newClient(r, rt.Buffer)
		if s.onConnect != nil {
			s.onConnect(c)
		}
		lastID, resume := lastEventID(r)
		st, err := s.attach(r.Context(), rt, vals, c, lastID, resume)
		if err != nil {
			s.refuse(w, rt, err)
			return
		}
		defer s.handlers.Done()
		defer st.leave(c, func(gen uint64) { s.release(st, gen) })
		s.stream(w, r, rt, c)
	}
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

// refuse answers a stream that cannot be served now with 200, a retry hint
// and the end of the stream: EventSource gives up for good on any other
// status, and this is a "come back later".
func (s *Server) refuse(w http.ResponseWriter, rt *config.Route, err error) {
	if !errors.Is(err, errClosing) {
		s.warn.Warn().Err(err).Str("route", rt.Path).Msg("stream refused")
	}
	retry := rt.Retry
	if retry == 0 {
		retry = comeBackLater
	}
	b := sse.AppendRetry(nil, retry)
	b = sse.AppendComment(b, "unavailable: "+err.Error())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// stream writes c's frames to w until the client goes, is dropped, or the
// server shuts down. Keepalive comments go out only when nothing else has
// for a keepalive period.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, rt *config.Route, c *Client) {
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
		for _, f := range frames {
			if _, err := w.Write(f); err != nil {
				return err
			}
		}
		return rc.Flush()
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
	var spare [][]byte
	for {
		var err error
		select {
		case <-r.Context().Done():
			log.Debug().Msg("client left")
			return
		case <-c.left:
			log.Debug().Msg("slow client dropped: its queue overflowed")
			return
		case <-s.closing:
			// The subscriptions are drained: what is queued is all there
			// is, and goes out before the goodbye.
			batch := c.take(spare)
			_ = write(append(batch, shutdownLine)...)
			return
		case <-c.wake:
			batch := c.take(spare)
			err = write(batch...)
			clear(batch)
			spare = batch
		case <-keepalive:
			err = write(keepaliveLine)
		}
		if err != nil {
			log.Debug().Err(err).Msg("client lost")
			return
		}
		if timer != nil {
			timer.Reset(rt.Keepalive)
		}
	}
}
