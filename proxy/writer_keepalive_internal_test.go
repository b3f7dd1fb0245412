package proxy

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/sse"
)

// recorder is a ResponseWriter that can be read while a handler writes.
type recorder struct {
	header http.Header
	mu     sync.Mutex
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(int)     {}
func (r *recorder) Flush()              {}
func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.body.Write(p)
}

// take returns what was written since the last take.
func (r *recorder) take() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.body.String()
	r.body.Reset()
	return s
}

// Keepalive comments go out after a keepalive period of silence, and only
// then: events in between push the next one back. Run on synctest's fake
// clock, so hours of stream take no time and the timing is exact.
func TestKeepaliveTiming(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		rt := &config.Route{Path: "/sse", Keepalive: time.Minute, WriteTimeout: time.Second, Buffer: 16}
		s := &Server{log: zerolog.Nop(), closing: make(chan struct{})}
		s.metrics = newMetrics(s)
		ctx, leave := context.WithCancel(t.Context())
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/sse", nil)
		c := newClient(req, rt.Buffer)
		w := &recorder{header: http.Header{}}
		done := make(chan struct{})
		o := &writer{hurry: t.Context(), rt: rt, m: s.metrics.route(rt), end: func(string) {}}
		go func() {
			defer close(done)
			s.serve(w, req, o, c, time.Time{})
		}()
		keepalive := string(keepaliveLine)
		event := string(sse.AppendComment(nil, "event"))
		// expect lets d pass, lets the handler settle, and checks what it
		// wrote meanwhile.
		expect := func(d time.Duration, want, why string) {
			t.Helper()
			time.Sleep(d)
			synctest.Wait()
			if got := w.take(); got != want {
				t.Fatalf("%s: wrote %q, want %q", why, got, want)
			}
		}

		// Busy: an event every 59s for an hour, never a keepalive.
		for range 60 {
			c.push([]byte(event))
			expect(59*time.Second, event, "busy stream")
		}
		// Then silence: one keepalive per minute of it, counted from the
		// last write.
		for range 3 {
			expect(time.Second, keepalive, "after a minute of silence")
			expect(59*time.Second, "", "within a minute of the last keepalive")
		}
		leave()
		<-done
	})
}
