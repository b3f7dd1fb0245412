package proxy

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/sse"
)

// serve starts c's stream on o: it writes the response head and hands
// the client its sink. An HTTP/1.1 connection is taken out of net/http
// (hijacked) so that the handler and its buffers go and an idle stream
// costs only its connection and its queue; other requests (HTTP/2, or a
// ResponseWriter that cannot hand its connection over) keep the handler
// until the stream ends.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, o *writer, c *Client, expires time.Time) {
	var head []byte
	if o.rt.Retry > 0 {
		head = sse.AppendRetry(head, o.rt.Retry)
	}
	// A stream that must end after max_stream_duration ends somewhere in
	// its last fifth, so clients that came together do not all come back
	// together; they resume from where they were.
	var lifetime time.Duration
	if d := o.rt.MaxStreamDuration; d > 0 {
		lifetime = d - rand.N(d/5+1)
	}
	if hj, ok := w.(http.Hijacker); ok && r.ProtoMajor == 1 {
		if s.serveHijacked(w, hj, o, c, head) {
			c.start(o, lifetime, expires)
		}
		return
	}

	o.sink = newHandlerSink(w)
	w.WriteHeader(http.StatusOK)
	// Written even when empty: the flush sends the head.
	n, err := o.write([][]byte{head})
	if err != nil {
		c.fail(o, "client lost: "+err.Error())
		return
	}
	o.m.bytes.Add(float64(n))
	s.log.Debug().Str("route", o.rt.Path).Str("remote", r.RemoteAddr).Msg("client connected")
	done := c.Done()
	c.start(o, lifetime, expires)
	select {
	case <-r.Context().Done():
		c.leave()
	case <-done:
	}
	<-done
}

// serveHijacked takes the connection, writes the head to it and watches
// for the peer's end; it reports whether the client can start.
func (s *Server) serveHijacked(w http.ResponseWriter, hj http.Hijacker, o *writer, c *Client, head []byte) bool {
	conn, _, err := hj.Hijack()
	if err != nil {
		c.fail(o, "client lost: hijack: "+err.Error())
		return false
	}
	// What the client sent after its request stays unread in the dropped
	// reader: an EventSource sends nothing, and the response's end (the
	// connection's) answers nothing pipelined.
	if o.rt.SlowConsumer == config.Disconnect {
		limitUnsent(conn, unsentLimitDisconnect)
	} else {
		limitUnsent(conn, unsentLimit)
	}
	cs := newConnSink(conn, c.leave, &s.lingering)
	o.sink = cs
	// One buffer: a connection keeps the vector of its first writev.
	status := streamHead(w.Header(), time.Now())
	n, err := o.write([][]byte{append(status, head...)})
	if err != nil {
		c.fail(o, "client lost: "+err.Error())
		return false
	}
	o.m.bytes.Add(float64(n - int64(len(status))))
	pw, err := s.peerWatcher()
	if err == nil {
		cs.stopWatch, err = pw.Watch(conn, cs.peerGone)
	}
	if err != nil {
		c.fail(o, "client not watched: "+err.Error())
		return false
	}
	s.log.Debug().Str("route", o.rt.Path).Str("remote", conn.RemoteAddr().String()).Msg("client connected")
	return true
}

func setStreamHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
}

// streamHead is the response head of a hijacked stream: 200, the headers
// set on the ResponseWriter (the stream's, CORS, a middleware's), a Date,
// and "Connection: close", since the body is neither chunked nor of known
// length: it ends when the connection closes.
func streamHead(h http.Header, now time.Time) []byte {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	// Write leaves out invalid names and turns newlines in values
	// into spaces, as net/http does; values with other control characters,
	// which would make clients refuse the whole response, are left out.
	// Keys are compared canonical: a map filled by hand need not be.
	valid := make(http.Header, len(h))
	for k, vs := range h {
		k = http.CanonicalHeaderKey(k)
		if hopByHop[k] {
			continue
		}
		for _, v := range vs {
			if validFieldValue(v) {
				valid[k] = append(valid[k], v)
			}
		}
	}
	_ = valid.Write(&b)
	b.WriteString("Date: ")
	b.Write(now.UTC().AppendFormat(nil, http.TimeFormat))
	b.WriteString("\r\nConnection: close\r\n\r\n")
	return b.Bytes()
}

// validFieldValue reports whether v can stand in a header (RFC 9110,
// section 5.5), counting CR and LF as the spaces they are written as.
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' && c != '\r' && c != '\n' || c == 0x7f {
			return false
		}
	}
	return true
}

// hopByHop are headers a handler may have set that the hijacked stream's
// head decides itself.
var hopByHop = map[string]bool{
	"Connection":        true,
	"Content-Length":    true,
	"Transfer-Encoding": true,
	"Date":              true,
	"Keep-Alive":        true,
	"Trailer":           true,
}
