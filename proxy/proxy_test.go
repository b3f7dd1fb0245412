package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/internal/ssetest"
	"github.com/ssegate/ssegate/proxy"
	"github.com/ssegate/ssegate/sse"
	"github.com/ssegate/ssegate/sse/sseparse"
)

const basicRoute = `
route "/sse" {
  source "nats" { subject = "events" }
}
`

func TestResponseHeadersAndRetryLine(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/sse" {
  retry = "1500ms"
  source "nats" { subject = "events" }
}`)
	c := h.open("/sse", nil)
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream; charset=utf-8",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
	} {
		if got := c.Resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	c.WaitRaw("retry: 1500\n")
	if raw := c.Raw(); raw != "retry: 1500\n" {
		t.Errorf("stream starts %q, want the retry line alone", raw)
	}
	h.publish("events", "x")
	c.ExpectData("x")
}

func TestDataLineEndsAndUTF8(t *testing.T) {
	t.Parallel()
	h := start(t, basicRoute)
	c := h.open("/sse", nil)
	h.publish("events", "a\r\nb\rc\nd")
	h.publish("events", "日本語 ✓ émoji 🎉")
	h.publish("events", "")
	h.publish("events", "trailing\n")
	c.ExpectData("a\nb\nc\nd", "日本語 ✓ émoji 🎉", "", "trailing\n")
	if raw := c.Raw(); !strings.Contains(raw, "data: a\ndata: b\ndata: c\ndata: d\n\n") {
		t.Errorf("CR and CRLF were not split into data lines:\n%q", raw)
	}
}

func TestBinaryPayloadIsBase64(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/bin" {
  source "nats" { subject = "bin" }
}
route "/explicit" {
  source "nats" {
    subject = "bin"
    data    = "len=${strlen(msg.body_base64)} b64=${msg.body_base64}"
  }
}`)
	c := h.open("/bin", nil)
	e := h.open("/explicit", nil)
	h.publish("bin", "\xff\x00\xfe")
	c.ExpectData("/wD+")
	e.ExpectData("len=4 b64=/wD+")
}

func TestEventNamesAndIDsFromExpressions(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/orders" {
  source "nats" {
    subject = "orders.>"
    event   = msg.subject_tokens[1]
    id      = msg.headers["Order-Id"]
    data    = jsonencode({ total = msg.json.total, who = msg.json.customer.name })
  }
}`)
	c := h.open("/orders", nil)
	m := nats.NewMsg("orders.created")
	m.Header.Set("Order-Id", "o-17")
	m.Data = []byte(`{"total": 12.5, "customer": {"name": "Ada"}}`)
	h.publishMsg(m)
	ev := c.Next()
	if ev.Type != "created" || ev.LastEventID != "o-17" || ev.Data != `{"total":12.5,"who":"Ada"}` {
		t.Errorf("got %+v", ev)
	}
}

func TestBadMessagesAreDroppedNotFatal(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/sse" {
  source "nats" {
    subject = "events"
    id      = try(msg.json.id, null)
    event   = msg.json.kind
  }
}`)
	c := h.open("/sse", nil)
	h.publish("events", `not json`)                        // event expression fails
	h.publish("events", `{"kind": "k", "id": "a\nb"}`)     // id would inject a field
	h.publish("events", `{"kind": "k\ndata: x", "id": 1}`) // so would the name
	h.publish("events", `{"kind": "ok", "id": 2}`)
	ev := c.Next()
	if ev.Type != "ok" || ev.LastEventID != "2" {
		t.Errorf("got %+v, want only the valid event", ev)
	}
}

func TestPathParameterSelectsSubject(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/stocks/{symbol}" {
  source "nats" {
    subject = "stocks.${path.symbol}"
    event   = "quote"
    data    = "${path.symbol}=${msg.body}"
  }
}`)
	aapl := h.open("/stocks/AAPL", nil)
	msft := h.open("/stocks/MSFT", nil)
	h.publish("stocks.AAPL", "1")
	h.publish("stocks.MSFT", "2")
	h.publish("stocks.AAPL", "3")
	aapl.ExpectData("AAPL=1", "AAPL=3")
	msft.ExpectData("MSFT=2")
	msft.ExpectQuiet(50 * time.Millisecond)
}

func TestErrorStatuses(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/stocks/{symbol}" {
  source "nats" { subject = "stocks.${path.symbol}" }
}`)
	tests := []struct {
		method, path string
		want         int
		body         string
	}{
		{"GET", "/nope", http.StatusNotFound, ""},
		{"GET", "/stocks/a.b", http.StatusBadRequest, "cannot stand in a NATS subject"},
		{"GET", "/stocks/%2A", http.StatusBadRequest, "cannot stand in a NATS subject"},
		{"GET", "/stocks/%3E", http.StatusBadRequest, ""},
		{"GET", "/stocks/a%20b", http.StatusBadRequest, ""},
		{"POST", "/stocks/AAPL", http.StatusMethodNotAllowed, ""},
		{"DELETE", "/stocks/AAPL", http.StatusMethodNotAllowed, ""},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, h.ts.URL+tt.path, nil)
		resp, err := h.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != tt.want || !strings.Contains(string(body), tt.body) {
			t.Errorf("%s %s = %d %q, want %d containing %q", tt.method, tt.path, resp.StatusCode, body, tt.want, tt.body)
		}
	}

	resp, err := h.ts.Client().Head(h.ts.URL + "/stocks/AAPL")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Errorf("HEAD = %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestResumeReplaysExactlyTheMissedEvents(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/sse" {
  history = 10
  source "nats" { subject = "events" }
}`)
	c := h.open("/sse", nil)
	for i := 1; i <= 3; i++ {
		h.publish("events", fmt.Sprint(i))
	}
	seen := c.ExpectData("1", "2", "3")
	c.Close()
	for i := 4; i <= 6; i++ {
		h.publish("events", fmt.Sprint(i))
	}

	// Header, as EventSource sends it.
	r := h.open("/sse", http.Header{"Last-Event-Id": {seen[1].LastEventID}})
	r.ExpectData("3", "4", "5", "6")
	h.publish("events", "7")
	r.ExpectData("7")
	r.ExpectQuiet(50 * time.Millisecond)

	// Query parameter, for clients that cannot set headers.
	q := h.open("/sse?lastEventId="+seen[2].LastEventID, nil)
	got := q.ExpectData("4", "5", "6", "7")

	// Resuming from the newest event replays nothing and resets nothing.
	n := h.open("/sse", http.Header{"Last-Event-Id": {got[len(got)-1].LastEventID}})
	n.ExpectQuiet(50 * time.Millisecond)
	h.publish("events", "8")
	n.ExpectData("8")
}

func TestUnknownLastEventIDGetsResetEvent(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/sse" {
  history = 2
  source "nats" { subject = "events" }
}`)
	c := h.open("/sse", nil)
	h.publish("events", "1")
	first := c.ExpectData("1")[0]
	h.publish("events", "2")
	h.publish("events", "3")
	latest := c.ExpectData("2", "3")[1]

	for _, stale := range []string{"never-seen", first.LastEventID} { // unknown, and evicted from history
		r := h.open("/sse", http.Header{"Last-Event-Id": {stale}})
		ev := r.Next()
		if ev.Type != proxy.ResetEvent || ev.Data != fmt.Sprintf(`{"last_event_id":%q}`, stale) || ev.LastEventID != latest.LastEventID {
			t.Errorf("resume from %q: got %+v, want a reset event with the latest id %q", stale, ev, latest.LastEventID)
		}
		h.publish("events", "live-"+stale)
		latest = r.ExpectData("live-" + stale)[0]
		c.ExpectData("live-" + stale)
	}
}

// A reset on a stream with no events yet still carries an id, so the
// client's next reconnect resumes from the stream's start instead of
// silently starting over.
func TestResetBeforeFirstEventThenResume(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/rooms/{room}" {
  history = 2
  linger  = "1m"
  source "nats" { subject = "rooms.${path.room}" }
}`)
	r := h.open("/rooms/a", http.Header{"Last-Event-Id": {"from-before-restart"}})
	reset := r.Next()
	if reset.Type != proxy.ResetEvent || reset.LastEventID == "" {
		t.Fatalf("got %+v, want a reset event with an id", reset)
	}
	r.Close()
	eventually(t, "the client to leave", func() bool { return h.srv.Clients() == 0 })
	h.publish("rooms.a", "missed-1")
	h.publish("rooms.a", "missed-2")

	again := http.Header{"Last-Event-Id": {reset.LastEventID}}
	resumed := h.open("/rooms/a", again)
	resumed.ExpectData("missed-1", "missed-2")

	// Once the history has lost the first event, the start is gone too.
	h.publish("rooms.a", "3")
	resumed.ExpectData("3")
	ev := h.open("/rooms/a", again).Next()
	if ev.Type != proxy.ResetEvent || ev.LastEventID == reset.LastEventID {
		t.Errorf("resume from the start after eviction: got %+v, want a reset to the latest id", ev)
	}
}

// EventSource sends no Last-Event-ID before its first event; an empty one
// from another client means the same: no resume, no reset.
func TestEmptyLastEventIDIsAFreshStart(t *testing.T) {
	t.Parallel()
	h := start(t, basicRoute)
	clients := []*client{
		h.open("/sse", http.Header{"Last-Event-Id": {""}}),
		h.open("/sse?lastEventId=", nil),
	}
	h.publish("events", "x")
	for _, c := range clients {
		c.ExpectData("x")
	}
}

func TestIDFromPreviousProcessIsNotConfusedWithNew(t *testing.T) {
	t.Parallel()
	ns := loopback.NATS(t, "")
	cfg := `
route "/sse" {
  source "nats" { subject = "events" }
}`
	a := startOn(t, ns, cfg)
	ca := a.open("/sse", nil)
	a.publish("events", "from A")
	old := ca.ExpectData("from A")[0].LastEventID
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	b := startOn(t, ns, cfg)
	cb := b.open("/sse", nil)
	b.publish("events", "from B")
	fresh := cb.ExpectData("from B")[0].LastEventID
	if fresh == old {
		t.Fatalf("restarted process reused id %q", old)
	}
	r := b.open("/sse", http.Header{"Last-Event-Id": {old}})
	if ev := r.Next(); ev.Type != proxy.ResetEvent {
		t.Fatalf("resume with an id of the previous process: got %+v, want %s", ev, proxy.ResetEvent)
	}
}

func TestLinger(t *testing.T) {
	t.Parallel()
	// leave has one client of /rooms/a see one event and leave, on a
	// route with the given linger; it returns that event's id.
	leave := func(t *testing.T, linger string) (*harness, string) {
		h := start(t, fmt.Sprintf(`
route "/rooms/{room}" {
  linger = %q
  source "nats" { subject = "rooms.${path.room}" }
}`, linger))
		c := h.open("/rooms/a", nil)
		h.publish("rooms.a", "1")
		seen := c.ExpectData("1")[0]
		c.Close()
		eventually(t, "the client to leave", func() bool { return h.srv.Clients() == 0 })
		return h, seen.LastEventID
	}

	t.Run("reconnect within linger misses nothing", func(t *testing.T) {
		h, id := leave(t, "1m")
		// Nobody watches now; the stream keeps recording.
		h.publish("rooms.a", "2")
		h.publish("rooms.a", "3")
		r := h.open("/rooms/a", http.Header{"Last-Event-Id": {id}})
		r.ExpectData("2", "3")
		h.publish("rooms.a", "4")
		r.ExpectData("4")
		r.ExpectQuiet(50 * time.Millisecond)
	})

	t.Run("stream freed after linger", func(t *testing.T) {
		h, id := leave(t, "20ms")
		eventually(t, "the stream to be freed", func() bool { return h.srv.OpenStreams() == 0 })
		h.publish("rooms.a", "lost: nobody subscribed")
		r := h.open("/rooms/a", http.Header{"Last-Event-Id": {id}})
		if ev := r.Next(); ev.Type != proxy.ResetEvent {
			t.Fatalf("got %+v, want %s: the freed stream's history is gone", ev, proxy.ResetEvent)
		}
		h.publish("rooms.a", "2")
		r.ExpectData("2")
	})
}

func TestTwoSourcesMergeInArrivalOrder(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/feed" {
  source "nats" {
    subject = "a"
    event   = "from-a"
  }
  source "nats" {
    subject = "b"
    event   = "from-b"
  }
}`)
	c := h.open("/feed", nil)
	for _, m := range []struct{ subject, data, want string }{
		{"a", "1", "from-a:1"}, {"b", "2", "from-b:2"}, {"a", "3", "from-a:3"}, {"b", "4", "from-b:4"},
	} {
		h.publish(m.subject, m.data)
		ev := c.Next()
		if got := ev.Type + ":" + ev.Data; got != m.want {
			t.Errorf("got %s, want %s", got, m.want)
		}
	}
	// One history holds both: a resume replays them merged.
	r := h.open("/feed", http.Header{"Last-Event-Id": {"never-seen"}})
	if ev := r.Next(); ev.Type != proxy.ResetEvent {
		t.Fatalf("got %+v", ev)
	}
}

// Keepalives on the wire, end to end: an idle stream gets a comment line
// with no blank line after it. TestKeepaliveTiming holds the timing, busy
// streams included, on synctest's clock.
func TestKeepaliveOnTheWire(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/idle" {
  keepalive = "1s"
  source "nats" { subject = "idle" }
}`)
	idle := h.open("/idle", nil)
	idle.WaitRaw(": keepalive\n")
	h.publish("idle", "after")
	idle.ExpectData("after")
	if raw := idle.Raw(); strings.Contains(raw, ": keepalive\n\n") {
		t.Errorf("keepalive followed by a blank line (an empty event for some clients): %q", raw)
	}
}

// A client that stops reading fills its socket, then its queue, and is
// dropped; a fast client on the same stream gets every event meanwhile.
// fastAndSlow opens path twice: an event stream the test reads, and a
// bare connection that reads nothing until the test reads resp.Body.
func fastAndSlow(t *testing.T, h *harness, path string) (*client, net.Conn, *http.Response) {
	t.Helper()
	fast := h.open(path, nil)
	conn, resp := h.rawOpen(path)
	eventually(t, "both clients to join", func() bool { return h.srv.Clients() == 2 })
	return fast, conn, resp
}

// burstBatch is how many events burstPastSlowClient sends at a time: a
// client that keeps up has no more queued.
const burstBatch = 10

// burstPastSlowClient publishes n events of 64 KiB on "events", "<i>
// <payload>", far more than a client's socket buffers hold, in batches
// that fast reads (and checks) before the next is sent; it returns the
// payload.
func burstPastSlowClient(t *testing.T, h *harness, fast *client, n int) string {
	t.Helper()
	payload := strings.Repeat("x", 64<<10)
	for i := 0; i < n; i += burstBatch {
		for j := i; j < i+burstBatch; j++ {
			if err := h.pub.Publish("events", []byte(fmt.Sprintf("%d %s", j, payload))); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.pub.FlushTimeout(wait); err != nil {
			t.Fatal(err)
		}
		for j := i; j < i+burstBatch; j++ {
			ev := fast.Next()
			if want := fmt.Sprintf("%d %s", j, payload); ev.Data != want {
				t.Fatalf("fast client event %d: got %.20q, want %.20q", j, ev.Data, want)
			}
		}
	}
	return payload
}

func TestSlowClientDroppedFastClientUnaffected(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/sse" {
  buffer        = 64
  write_timeout = "300ms"
  source "nats" { subject = "events" }
}`)
	fast, conn, resp := fastAndSlow(t, h, "/sse")

	// Far more than the slow client's socket buffers and queue hold: the
	// fast client keeps up, the slow one never reads at all.
	const n = 400
	payload := burstPastSlowClient(t, h, fast, n)

	// The server ended the slow client's stream: its body ends (cleanly or
	// cut short, EventSource reconnects either way), well short of
	// everything that was published.
	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	got, err := io.Copy(io.Discard, resp.Body)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("slow client's stream was not ended: still open after %d bytes", got)
	}
	if got >= int64(n*len(payload)) {
		t.Fatalf("slow client received %d bytes: it was not dropped", got)
	}
	eventually(t, "the slow client to leave", func() bool { return h.srv.Clients() == 1 })
}

func TestHTTP2AndMiddleware(t *testing.T) {
	t.Parallel()
	h := start(t, basicRoute)
	// Middleware that wraps the ResponseWriter, as logging and metrics
	// middleware do; Unwrap lets the proxy find the flusher.
	wrapped := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.srv.ServeHTTP(&wrapWriter{ResponseWriter: w}, r)
	})
	ts := newTLSServer(t, wrapped)
	c := ssetest.Open(t, ts.Client(), ts.URL+"/sse", nil)
	if c.Resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s, want HTTP/2", c.Resp.Proto)
	}
	h.publish("events", "over h2")
	c.ExpectData("over h2")
}

type wrapWriter struct{ http.ResponseWriter }

func (w *wrapWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestVerifyRequestAndOnConnect(t *testing.T) {
	t.Parallel()
	kept := make(chan *proxy.Client, 1)
	h := start(t, basicRoute,
		proxy.VerifyRequest(func(r *http.Request) bool { return r.URL.Query().Get("key") == "sesame" }),
		proxy.OnConnect(func(c *proxy.Client) {
			e, _ := sse.NewEvent("welcome", "hello "+c.Request().URL.Query().Get("name"))
			if err := c.Send(e); err != nil {
				t.Error(err)
			}
			kept <- c
		}),
	)
	resp, err := h.ts.Client().Get(h.ts.URL + "/sse?key=wrong")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("refused request: %d, want 403", resp.StatusCode)
	}

	c := h.open("/sse?key=sesame&name=ada", nil)
	if ev := c.Next(); ev.Type != "welcome" || ev.Data != "hello ada" {
		t.Errorf("greeting = %+v", ev)
	}
	h.publish("events", "for everyone")
	c.ExpectData("for everyone")

	// A hook that keeps a client learns when it is gone.
	kc := <-kept
	c.Close()
	select {
	case <-kc.Done():
	case <-time.After(wait):
		t.Fatal("Done was not closed after the client left")
	}
	e, _ := sse.NewEvent("", "too late")
	eventually(t, "Send to fail after the client left", func() bool {
		return errors.Is(kc.Send(e), proxy.ErrClientGone)
	})
}

// NATS down when ssegate starts is the same failure as NATS going down
// later: ssegate serves, and events flow once NATS is there.
func TestNATSDownAtStartThenUp(t *testing.T) {
	t.Parallel()
	addr := loopback.FreeAddr(t)
	srv, ts := startWithoutNATS(t, addr, basicRoute)
	c := ssetest.Open(t, ts.Client(), ts.URL+"/sse", nil)

	ns := loopback.NATS(t, addr)
	eventually(t, "ssegate to connect", srv.Conn().IsConnected)
	pub := connect(t, ns)
	// The subscription is sent on reconnect; publish until it is in place.
	eventually(t, "an event to arrive", func() bool {
		if err := pub.Publish("events", []byte("finally")); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-c.Events():
			return ev.Data == "finally"
		case <-time.After(50 * time.Millisecond):
			return false
		}
	})
}

// Clients that keep dropping and resuming while events are published
// without pause see every event exactly once, in order: the seam between
// replay and live has no gap and no duplicate.
func TestResumeSeamUnderConcurrentPublishing(t *testing.T) {
	t.Parallel()
	resumeSeam(t, start(t, `
route "/sse" {
  history = 5000
  source "nats" { subject = "events" }
}`), "/sse", "events")
}

// resumeSeam has a client on path drop and resume again and again while
// events are published without pause, in turn on each of subjects, and
// checks it sees each once, in order.
func resumeSeam(t *testing.T, h *harness, path string, subjects ...string) {
	const n = 2000
	c := h.open(path, nil) // joined before the first event
	published := make(chan error, 1)
	// The publisher keeps up to two connections' reads ahead of the
	// reader, so reconnects land mid-burst, and within a client's queue
	// (buffer, 256), so the reader is never dropped as too slow.
	progress := make(chan int, n)
	done := make(chan struct{})
	defer close(done)
	go func() {
		read := 0
		for i := range n {
			for i-read >= 200 {
				select {
				case read = <-progress:
				case <-done:
					return
				}
			}
			if err := h.pub.Publish(subjects[i%len(subjects)], []byte(fmt.Sprint(i))); err != nil {
				published <- err
				return
			}
		}
		published <- h.pub.Flush()
	}()

	next, lastID := 0, ""
	for next < n {
		if lastID != "" {
			c = h.open(path, http.Header{"Last-Event-Id": {lastID}})
		}
		// Read a few events, then drop the connection.
		for range 100 {
			if next == n {
				break
			}
			ev := c.Next()
			if ev.Type == proxy.ResetEvent {
				t.Fatalf("reset after %d events: the resume id %q was lost", next, lastID)
			}
			if ev.Data != fmt.Sprint(next) {
				t.Fatalf("after %d events got %q: a gap or a duplicate at the seam", next, ev.Data)
			}
			next++
			lastID = ev.LastEventID
		}
		c.Close()
		progress <- next
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
}

// Client.Close ends one client's stream after what is queued for it, with
// the retry hint asked for; the stream's other clients go on.
func TestClientClose(t *testing.T) {
	t.Parallel()
	var closing *proxy.Client
	h := start(t, basicRoute, proxy.OnConnect(func(c *proxy.Client) {
		if c.Request().URL.Query().Has("close") {
			closing = c
		}
	}))
	stays := h.open("/sse", nil)
	goes := h.open("/sse?close", nil)
	h.publish("events", "to both")
	stays.ExpectData("to both")
	goes.ExpectData("to both")
	closing.Close(7 * time.Second)
	goes.WaitEnd()
	if !strings.HasSuffix(goes.Raw(), "retry: 7000\n: closed\n") {
		t.Errorf("closed stream ends with %q, want a retry hint and a comment", goes.Raw())
	}
	select {
	case <-closing.Done():
	case <-time.After(wait):
		t.Fatal("Done not closed after Close")
	}
	h.publish("events", "to one")
	stays.ExpectData("to one")
	closing.Close(0) // again: nothing happens
}

// With slow_consumer = "drop", a client that falls behind loses its
// oldest queued events instead of its stream, and is told which with
// ssegate-gap in their place; a client that keeps up loses nothing.
// Checked event by event: what the slow client gets is every event in
// order, but for runs that a gap event names exactly.
func TestSlowConsumerDrop(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/sse" {
  buffer        = 16 # over a burst's batch: the fast client never has more queued
  write_timeout = "1m"
  slow_consumer = "drop"
  source "nats" { subject = "events" }
}`)
	fast, conn, resp := fastAndSlow(t, h, "/sse")

	// Far more than the slow client's socket buffers and queue hold; the
	// slow one reads nothing until the end.
	const n = 400
	burstPastSlowClient(t, h, fast, n)

	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	events := sseparse.NewReader(resp.Body, 1<<20)
	next, gaps := 0, 0
	seq := func(id string) int {
		n, _ := strconv.Atoi(id[strings.LastIndexByte(id, '-')+1:])
		return n // ids are <epoch>-<seq>, seq 1 for event 0
	}
	for next < n {
		ev, err := events.Next()
		if err != nil {
			t.Fatalf("after %d events: %v", next, err)
		}
		if ev.Type == proxy.GapEvent {
			var gap struct {
				First, Last string
				Missed      int
			}
			if err := json.Unmarshal([]byte(ev.Data), &gap); err != nil {
				t.Fatal(err)
			}
			first, last := seq(gap.First), seq(gap.Last)
			if first-1 != next || gap.Missed != last-first+1 {
				t.Fatalf("after %d events, a gap of %+v", next, gap)
			}
			next, gaps = last, gaps+1
			continue
		}
		if !strings.HasPrefix(ev.Data, fmt.Sprint(next, " ")) || seq(ev.LastEventID) != next+1 {
			t.Fatalf("after %d events got %.20q (id %s): a gap or a duplicate no gap event names", next, ev.Data, ev.LastEventID)
		}
		next++
	}
	if gaps == 0 {
		t.Fatal("the slow client lost nothing: the test did not make it fall behind")
	}
	if c := h.srv.Clients(); c != 2 {
		t.Errorf("%d clients: the slow one was disconnected", c)
	}
}

// With slow_consumer = "latest", a client that falls behind gets, of what
// queued up for it, only the newest event of each key (the subject, or
// the source's key expression): it always ends with the latest state of
// every key, in id order, never an unbounded queue; a client that keeps
// up gets everything.
func TestSlowConsumerLatest(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct{ source, subject string }{
		"by subject":        {`source "nats" { subject = "quotes.*" }`, "quotes.k%d"},
		"by key expression": {`source "nats" {` + "\n" + `subject = "quotes"` + "\n" + `conflation_key = split(" ", msg.body)[0]` + "\n" + `}`, "quotes"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := start(t, `
route "/quotes" {
  buffer        = 64
  write_timeout = "1m"
  slow_consumer = "latest"
  `+c.source+`
}`)
			conflated(t, h, func(k int) string {
				if strings.Contains(c.subject, "%d") {
					return fmt.Sprintf(c.subject, k)
				}
				return c.subject
			})
		})
	}
}

// conflated has a slow client on /quotes fall behind while 50 keys get 6
// rounds of events, published on subject(key), and checks what it gets.
func conflated(t *testing.T, h *harness, subject func(key int) string) {
	t.Helper()
	fast, conn, resp := fastAndSlow(t, h, "/quotes")
	const keys, rounds = 50, 6
	payload := strings.Repeat("x", 64<<10)
	for r := range rounds {
		for k := range keys {
			if err := h.pub.Publish(subject(k), []byte(fmt.Sprintf("k%d %d %s", k, r, payload))); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.pub.FlushTimeout(wait); err != nil {
			t.Fatal(err)
		}
		for k := range keys {
			if ev := fast.Next(); !strings.HasPrefix(ev.Data, fmt.Sprintf("k%d %d ", k, r)) {
				t.Fatalf("fast client, round %d key %d: got %.20q", r, k, ev.Data)
			}
		}
	}

	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	events := sseparse.NewReader(resp.Body, 1<<20)
	latest := map[int]int{} // key: the last round seen
	lastSeq, got := 0, 0
	for done := 0; done < keys; {
		ev, err := events.Next()
		if err != nil {
			t.Fatalf("after %d events: %v", got, err)
		}
		got++
		var k, r int
		if _, err := fmt.Sscanf(ev.Data, "k%d %d ", &k, &r); err != nil {
			t.Fatalf("event %q (%.20q): %v", ev.Type, ev.Data, err)
		}
		seq, _ := strconv.Atoi(ev.LastEventID[strings.LastIndexByte(ev.LastEventID, '-')+1:])
		if seq <= lastSeq {
			t.Fatalf("id %s after seq %d: out of order", ev.LastEventID, lastSeq)
		}
		if prev, ok := latest[k]; ok && r <= prev {
			t.Fatalf("key %d: round %d after round %d", k, r, prev)
		}
		lastSeq, latest[k] = seq, r
		if r == rounds-1 {
			done++
		}
	}
	if got >= keys*rounds {
		t.Fatalf("the slow client got all %d events: the test did not make it fall behind", got)
	}
	t.Logf("the slow client got %d of %d events, the latest of every key", got, keys*rounds)
}
