package proxy_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssegate/ssegate/proxy"
)

// Abuse: the stream table. Every distinct path makes a stream that
// outlives its client (it lingers, for a resume); one address opening
// and closing streams without end must not grow the process, reach the
// clients of other streams, or push out a stream somebody watches.

// openAndClose opens a stream on path from a fresh connection, reads the
// status line and hangs up: a stream that then lingers.
func openAndClose(t *testing.T, addr, path string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
	status, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return status
}

func TestStreamTableHoldsUnderChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 3,000 streams")
	}
	const bound = 300
	h := start(t, fmt.Sprintf(`
max_streams        = %d
new_streams_per_ip = 0
route "/t/{name}" {
  linger = "10m"
  source "nats" { subject = "t.${path.name}" }
}`, bound))
	addr := h.ts.Listener.Addr().String()

	watched := h.open("/t/watched", nil)
	// A stream whose client left, with an event to resume after.
	gone := h.open("/t/gone", nil)
	h.publish("t.gone", "before")
	resumeFrom := gone.ExpectData("before")[0].LastEventID
	gone.Close()
	eventually(t, "the client of /t/gone to leave", func() bool { return h.srv.Clients() == 1 })

	base := runtime.NumGoroutine()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 10)
	for i := range 10 * bound {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if status := openAndClose(t, addr, fmt.Sprintf("/t/churn%d", i)); !strings.Contains(status, " 200 ") {
				t.Errorf("stream %d: %q", i, status)
			}
		})
		if i%bound == 0 {
			// Whoever watches a stream keeps getting its events.
			h.publish("t.watched", fmt.Sprint("during ", i))
			watched.ExpectData(fmt.Sprint("during ", i))
		}
		if n := h.srv.OpenStreams(); n > bound {
			t.Fatalf("%d streams held, over max_streams = %d", n, bound)
		}
	}
	wg.Wait()
	eventually(t, "the churn's clients to leave", func() bool { return h.srv.Clients() == 1 })
	if n := h.srv.OpenStreams(); n > bound {
		t.Fatalf("%d streams held, over max_streams = %d", n, bound)
	}
	// Lingering streams hold no goroutine: what is left is a few writers
	// and connections still closing.
	eventually(t, "goroutines to settle", func() bool { return runtime.NumGoroutine() < base+20 })
	if !h.srv.Conn().IsConnected() {
		t.Fatal("NATS connection lost")
	}

	// The lingering stream was given up, with its history: its client
	// is told it may have missed events.
	resumed := h.open("/t/gone", http.Header{"Last-Event-Id": {resumeFrom}})
	if ev := resumed.Next(); ev.Type != proxy.ResetEvent {
		t.Errorf("resume on a stream given up: %+v, want %s", ev, proxy.ResetEvent)
	}

	// Open streams are never given up: once they fill the table, a new
	// stream is told to come back later.
	var open []*client
	for i := 0; h.srv.OpenStreams() < bound || h.srv.Clients() < bound; i++ {
		if i > 2*bound {
			t.Fatalf("table not filled: %d streams, %d clients", h.srv.OpenStreams(), h.srv.Clients())
		}
		open = append(open, h.open(fmt.Sprintf("/t/open%d", i), nil))
	}
	resp := get(t, h.ts.URL+"/t/one-too-many", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a new stream with every stream open: %s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
	}
	h.publish("t.watched", "after")
	watched.ExpectData("after")
	for _, c := range open {
		c.Close()
	}
}

// One address may make new_streams_per_ip new streams a second, in bursts
// of four seconds' worth; joining a stream that exists is not limited.
func TestNewStreamsPerIP(t *testing.T) {
	t.Parallel()
	h := start(t, `
new_streams_per_ip = 1
route "/t/{name}" {
  source "nats" { subject = "t.${path.name}" }
}`)
	addr := h.ts.Listener.Addr().String()
	refused := -1
	for i := range 50 {
		if status := openAndClose(t, addr, fmt.Sprintf("/t/n%d", i)); strings.Contains(status, " 429 ") {
			refused = i
			break
		}
	}
	// Four at once, and one a second: unless a request took a second,
	// the sixth is refused at the latest.
	if refused < 4 {
		t.Fatalf("refused after %d new streams, want a burst of at least 4 first", refused)
	}
	if status := openAndClose(t, addr, "/t/n0"); !strings.Contains(status, " 200 ") {
		t.Errorf("joining a lingering stream: %q, want 200", status)
	}
	c := h.open("/t/n1", nil) // past the rate, but the stream exists
	h.publish("t.n1", "joined")
	c.ExpectData("joined")
}
