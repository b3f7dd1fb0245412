package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ssegate/ssegate/proxy"
)

const shutdownLine = ": ssegate is shutting down; reconnect\n"

func TestShutdownClosesStreamsPromptly(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/a" {
  source "nats" { subject = "a" }
}
route "/b/{x}" {
  source "nats" { subject = "b.${path.x}" }
}`)
	clients := []*client{h.open("/a", nil), h.open("/a", nil), h.open("/b/1", nil)}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, c := range clients {
		c.WaitEnd()
		if raw := c.Raw(); !strings.HasSuffix(raw, shutdownLine) {
			t.Errorf("stream ended without the final comment: %q", raw)
		}
	}

	// A stream asked for during shutdown is told to come back later:
	// 200 with a retry hint, never a status EventSource gives up on.
	late := h.open("/a", nil)
	late.WaitEnd()
	expectRetryHint(t, late.Raw(), 5*time.Second)
}

// Everything published before Shutdown reaches a client before its final
// comment: what NATS had in flight and what sat in the client's queue
// behind a full socket.
func TestShutdownDeliversWhatWasPublishedBefore(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/sse" {
  buffer = 1000
  source "nats" { subject = "events" }
}`)
	conn, resp := h.rawOpen("/sse")
	eventually(t, "the client to join", func() bool { return h.srv.Clients() == 1 })

	// Far more than socket buffers hold, so most of it is still queued
	// when Shutdown begins.
	const n = 100
	payload := strings.Repeat("x", 64<<10)
	for i := range n {
		if err := h.pub.Publish("events", []byte(fmt.Sprintf("%d %s", i, payload))); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.pub.FlushTimeout(wait); err != nil {
		t.Fatal(err)
	}
	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		shutdown <- h.srv.Shutdown(ctx)
	}()

	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	next := 0
	var last string
	for sc.Scan() {
		line := sc.Text()
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			if want := fmt.Sprintf("%d %s", next, payload); data != want {
				t.Fatalf("event %d: got %.20q", next, data)
			}
			next++
		}
		if line != "" {
			last = line
		}
	}
	if next != n {
		t.Errorf("client got %d of %d events published before Shutdown", next, n)
	}
	if last+"\n" != shutdownLine {
		t.Errorf("stream ended with %q, want the final comment", last)
	}
	if err := <-shutdown; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// A client that reads nothing cannot hold Shutdown for its write_timeout;
// the others still get their final comment.
func TestShutdownDoesNotWaitForStuckClient(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/sse" {
  write_timeout = "1h"
  source "nats" { subject = "events" }
}`)
	ok := h.open("/sse", nil)
	h.rawOpen("/sse")
	eventually(t, "both clients to join", func() bool { return h.srv.Clients() == 2 })
	payload := strings.Repeat("x", 256<<10)
	for range 40 { // fills the stuck client's socket, not its queue
		if err := h.pub.Publish("events", []byte(payload)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.pub.FlushTimeout(wait); err != nil {
		t.Fatal(err)
	}
	for range 40 {
		ok.Next()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	ok.WaitEnd()
	if !strings.HasSuffix(ok.Raw(), shutdownLine) {
		t.Errorf("reading client's stream ended with %q", ok.Raw())
	}
}

// A stream a reload ended is still writing its last frames to a client
// that does not read; Shutdown's hurry cuts that write short too, instead
// of waiting out its write_timeout.
func TestShutdownHurriesStreamsEndedByReload(t *testing.T) {
	t.Parallel()
	route := `
route "/sse" {
  write_timeout = "1h"
  source "nats" { subject = "%s" }
}`
	h := start(t, fmt.Sprintf(route, "events"))
	h.rawOpen("/sse") // never read
	eventually(t, "the client to join", func() bool { return h.srv.Clients() == 1 })
	payload := strings.Repeat("x", 256<<10)
	for range 40 { // far more than the socket buffers hold
		h.publish("events", payload)
	}
	if err := h.srv.Reload(parse(t, fmt.Sprintf(route, "other"))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// A client that sent bytes after its request, which nobody reads, still
// gets its stream's last frames and a clean end (FIN), not a reset.
func TestStreamEndsCleanlyWithUnreadBytes(t *testing.T) {
	t.Parallel()
	h := start(t, basicRoute)
	c, br := rawStream(t, h.ts.Listener.Addr().String(), "/sse")
	eventually(t, "the client to join", func() bool { return h.srv.Clients() == 1 })
	if _, err := c.Write([]byte("unexpected")); err != nil {
		t.Fatal(err)
	}
	h.publish("events", "last")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	var rest strings.Builder
	for {
		line, err := br.ReadString('\n')
		rest.WriteString(line)
		if err != nil {
			if err != io.EOF {
				t.Fatalf("the stream ended with %v after %q, not a clean end", err, rest.String())
			}
			break
		}
	}
	if got := rest.String(); !strings.Contains(got, "data: last\n") || !strings.HasSuffix(got, shutdownLine) {
		t.Errorf("the end of the stream was %q", got)
	}
}

// A hook that kept a client whose stream could not open (the server is
// shutting down) learns that it is gone.
func TestClientTurnedAwayIsDone(t *testing.T) {
	t.Parallel()
	kept := make(chan *proxy.Client, 1)
	h := start(t, basicRoute, proxy.OnConnect(func(c *proxy.Client) { kept <- c }))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	h.open("/sse", nil).WaitEnd() // told to come back later
	select {
	case <-(<-kept).Done():
	case <-time.After(wait):
		t.Fatal("Done was not closed for a client turned away")
	}
}
