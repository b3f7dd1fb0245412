package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	gosse "github.com/tmaxmax/go-sse"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/proxy"
	"github.com/ssegate/ssegate/proxy/config"
)

// wait bounds every wait in these tests; nothing here should take long.
const wait = 10 * time.Second

func connect(t testing.TB, ns *server.Server) *nats.Conn {
	t.Helper()
	return connectTo(t, ns.ClientURL())
}

// connectTo connects to the NATS at url until the test ends.
func connectTo(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// harness is an ssegate Server behind a real HTTP server on 127.0.0.1,
// with its own NATS connection and a separate one to publish with.
type harness struct {
	t   testing.TB
	ns  *server.Server
	pub *nats.Conn
	srv *proxy.Server
	ts  *httptest.Server
}

func start(t testing.TB, hcl string, opts ...proxy.Option) *harness {
	t.Helper()
	return startOn(t, loopback.NATS(t, ""), hcl, opts...)
}

func startOn(t testing.TB, ns *server.Server, hcl string, opts ...proxy.Option) *harness {
	t.Helper()
	cfg, err := config.Parse([]byte(hcl), "test.hcl")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(cfg, append([]proxy.Option{proxy.WithNATS(connect(t, ns))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ns: ns, pub: connect(t, ns), srv: srv, ts: httptest.NewServer(srv)}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = srv.Shutdown(ctx)
		h.ts.Close()
	})
	return h
}

// startWithoutNATS serves hcl, prefixed with a nats block naming addr, a
// loopback address where no NATS server runs yet: the test starts one
// there when it wants NATS up.
func startWithoutNATS(t testing.TB, addr, hcl string) (*proxy.Server, *httptest.Server) {
	t.Helper()
	return serveConfig(t, fmt.Sprintf("nats { url = \"nats://%s\" }\n%s", addr, hcl))
}

// serveConfig serves hcl, with the NATS its nats block says, on a real
// HTTP server until the test ends.
func serveConfig(t testing.TB, hcl string) (*proxy.Server, *httptest.Server) {
	t.Helper()
	cfg, err := config.Parse([]byte(hcl), "test.hcl")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		// Shutdown ends the streams, which ts.Close waits for.
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		ts.Close()
	})
	return srv, ts
}

func (h *harness) publish(subject, body string) {
	h.t.Helper()
	h.publishMsg(&nats.Msg{Subject: subject, Data: []byte(body)})
}

func (h *harness) publishMsg(m *nats.Msg) {
	h.t.Helper()
	if err := h.pub.PublishMsg(m); err != nil {
		h.t.Fatal(err)
	}
	if err := h.pub.FlushTimeout(wait); err != nil {
		h.t.Fatal(err)
	}
}

// client is an SSE connection whose events are parsed by go-sse, a
// third-party parser, and whose raw bytes are kept for wire-level checks.
type client struct {
	t      testing.TB
	resp   *http.Response
	cancel context.CancelFunc
	events chan gosse.Event
	done   chan struct{} // closed at the end of the stream
	mu     sync.Mutex
	raw    bytes.Buffer
}

type lockedWriter struct{ c *client }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.c.raw.Write(p)
}

// open connects to path and fails the test unless the answer is a 200
// event stream. header may be nil.
func (h *harness) open(path string, header http.Header) *client {
	h.t.Helper()
	return openWith(h.t, h.ts.Client(), h.ts.URL+path, header)
}

func openWith(t testing.TB, hc *http.Client, url string, header http.Header) *client {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream") // as EventSource does
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		cancel()
		t.Fatalf("GET %s: %s, Content-Type %q", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	c := &client{t: t, resp: resp, cancel: cancel, events: make(chan gosse.Event, 10000), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		cfg := &gosse.ReadConfig{MaxEventSize: 1 << 20}
		for ev, err := range gosse.Read(io.TeeReader(resp.Body, lockedWriter{c}), cfg) {
			if err != nil {
				return
			}
			c.events <- ev
		}
	}()
	t.Cleanup(c.close)
	return c
}

func (c *client) close() {
	c.cancel()
	_ = c.resp.Body.Close()
}

func (c *client) next() gosse.Event {
	c.t.Helper()
	return c.nextWithin(wait)
}

// nextWithin is next, for an event that may take up to d to come.
func (c *client) nextWithin(d time.Duration) gosse.Event {
	c.t.Helper()
	select {
	case ev := <-c.events:
		return ev
	case <-c.done:
		select {
		case ev := <-c.events:
			return ev
		default:
		}
		c.t.Fatalf("stream ended; raw so far:\n%q", c.tail())
	case <-time.After(d):
		c.t.Fatalf("no event within %v; raw so far:\n%q", d, c.tail())
	}
	return gosse.Event{}
}

// expectData reads events and checks their data, in order.
func (c *client) expectData(want ...string) []gosse.Event {
	c.t.Helper()
	var got []gosse.Event
	for _, w := range want {
		ev := c.next()
		if ev.Data != w {
			c.t.Fatalf("event data = %q, want %q (event %+v)", ev.Data, w, ev)
		}
		got = append(got, ev)
	}
	return got
}

// expectQuiet checks that no event is waiting or arrives within d.
func (c *client) expectQuiet(d time.Duration) {
	c.t.Helper()
	select {
	case ev := <-c.events:
		c.t.Fatalf("unexpected event %+v", ev)
	case <-time.After(d):
	}
}

func (c *client) rawString() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.raw.String()
}

// tail is the end of the raw stream, for failure messages.
func (c *client) tail() string {
	s := c.rawString()
	if len(s) > 400 {
		s = "..." + s[len(s)-400:]
	}
	return s
}

// waitRaw waits until the raw stream contains s.
func (c *client) waitRaw(s string) {
	c.t.Helper()
	deadline := time.Now().Add(wait)
	for !strings.Contains(c.rawString(), s) {
		if time.Now().After(deadline) {
			c.t.Fatalf("raw stream never contained %q:\n%q", s, c.tail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *client) waitEnd() {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(wait):
		c.t.Fatalf("stream did not end; raw so far:\n%q", c.tail())
	}
}

// rawOpen starts a stream on a bare TCP connection that reads nothing
// until the test reads resp.Body: a client that does not keep up.
func (h *harness) rawOpen(path string) (net.Conn, *http.Response) {
	h.t.Helper()
	conn, err := net.Dial("tcp", h.ts.Listener.Addr().String())
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = conn.Close() })
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path); err != nil {
		h.t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		h.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		h.t.Fatalf("GET %s: %v %v", path, resp, err)
	}
	return conn, resp
}

// expectRetryHint checks that raw is a come-back-later answer: a retry
// hint of base with up to half of it added or taken off, then a comment.
func expectRetryHint(t testing.TB, raw string, base time.Duration) {
	t.Helper()
	var ms int
	rest, ok := strings.CutPrefix(raw, "retry: ")
	if ok {
		_, err := fmt.Sscanf(rest, "%d\n", &ms)
		ok = err == nil
	}
	d := time.Duration(ms) * time.Millisecond
	if !ok || d < base/2 || d >= base*3/2 || !strings.Contains(raw, "\n: ") {
		t.Errorf("answer %q, want a retry hint of %v ± 50%% and a comment", raw, base)
	}
}

// drain yields the events c still has, once its stream has ended.
func drain(c *client) <-chan gosse.Event {
	c.waitEnd()
	close(c.events)
	return c.events
}

// jetstreamFor is a JetStream client on ns, closed at the end of the test.
func jetstreamFor(t testing.TB, ns *server.Server) (jetstream.JetStream, error) {
	return jetstream.New(connect(t, ns))
}

// eventually polls cond until it holds, failing after wait.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// newTLSServer serves handler over TLS with HTTP/2 enabled.
func newTLSServer(t testing.TB, handler http.Handler) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(handler)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}
