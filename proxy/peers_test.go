package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/internal/ssetest"
)

// rawStream opens path on addr over a plain TCP connection and reads the
// response head.
func rawStream(t *testing.T, addr, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n", path)
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(wait))
	status, err := br.ReadString('\n')
	if err != nil || !strings.Contains(status, " 200 ") {
		t.Fatalf("status %q: %v", status, err)
	}
	return c, br
}

func clientsOn(h *harness, path string) int {
	for _, r := range h.srv.RouteInfos() {
		if r.Path == path {
			return r.Clients
		}
	}
	return -1
}

// A peer that vanishes without a FIN (its packets stop, as when a phone
// loses the network) is found by the next writes: they stall, and the
// write timeout drops the client.
func TestPeerVanishingWithoutFIN(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/sse" {
  write_timeout = "300ms"
  buffer        = 100000
  source "nats" { subject = "events" }
}`)
	link := loopback.NewLink(t, h.ts.Listener.Addr().String())
	rawStream(t, link.Addr(), "/sse")
	eventually(t, "the client to join", func() bool { return clientsOn(h, "/sse") == 1 })
	link.Pause()
	defer link.Resume()
	big := strings.Repeat("x", 32<<10)
	for range 200 { // far more than the socket buffers hold
		h.publish("events", big)
	}
	eventually(t, "the vanished peer to be dropped", func() bool { return clientsOn(h, "/sse") == 0 })
}

// A client that half-closes its side (sends FIN, keeps reading) is taken
// as gone, as net/http does for HTTP/1.1: its stream ends and its slot is
// freed, nothing lingers.
func TestHalfClosedClient(t *testing.T) {
	t.Parallel()
	h := start(t, basicRoute)
	c, br := rawStream(t, h.ts.Listener.Addr().String(), "/sse")
	eventually(t, "the client to join", func() bool { return clientsOn(h, "/sse") == 1 })
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the half-closed client to be let go", func() bool { return clientsOn(h, "/sse") == 0 })
	// The server closed its side too: the read ends.
	_ = c.SetReadDeadline(time.Now().Add(wait))
	for {
		if _, err := br.ReadString('\n'); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the connection stayed open")
			}
			break
		}
	}
}

// 10,000 streams opened and closed leave nothing behind: goroutines and
// the heap come back to where they were.
func TestStreamsOpenedAndClosedLeaveNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 10,000 streams")
	}
	h := start(t, `
route "/s/{n}" {
  linger = "0s"
  source "nats" { subject = "s.${path.n}" }
}`)
	addr := h.ts.Listener.Addr().String()
	openClose := func(n int) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(wait))
		fmt.Fprintf(c, "GET /s/%d HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n", n%100)
		if status, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.Contains(status, " 200 ") {
			t.Errorf("status %q: %v", status, err)
		}
	}
	settle := func() (goroutines int, heap uint64) {
		eventually(t, "every stream to be freed", func() bool { return clientsOn(h, "/s/{n}") == 0 && h.srv.RouteInfos()[0].Streams == 0 })
		h.ts.CloseClientConnections()
		eventually(t, "every connection to be closed on the server's side", func() bool { return serverConns(t, addr) == 0 })
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return runtime.NumGoroutine(), m.HeapInuse
	}
	for i := range 200 { // warm up pools and maps
		openClose(i)
	}
	g0, heap0 := settle()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for i := range 10000 {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			openClose(i)
		})
	}
	wg.Wait()
	g1, heap1 := settle()
	t.Logf("goroutines %d -> %d, heap in use %d -> %d KiB", g0, g1, heap0>>10, heap1>>10)
	if g1 > g0+10 {
		t.Errorf("goroutines grew from %d to %d", g0, g1)
	}
	if heap1 > heap0+8<<20 {
		t.Errorf("heap in use grew from %d to %d KiB", heap0>>10, heap1>>10)
	}
}

// serverConns counts the accepted connections of the listener at addr
// (IPv4) that the server has not closed yet, as the kernel sees them.
func serverConns(t *testing.T, addr string) int {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var p int
	fmt.Sscan(port, &p)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Skipf("needs Linux's /proc/net/tcp: %v", err)
	}
	local := fmt.Sprintf(":%04X ", p)
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		// ESTABLISHED (01) or CLOSE_WAIT (08): the server still holds it.
		if len(f) > 3 && strings.HasSuffix(f[1]+" ", local) && (f[3] == "01" || f[3] == "08") {
			n++
		}
	}
	return n
}

// An HTTP/1.1 stream is answered with a head ssegate writes itself once
// it has taken the connection: the stream's headers and those set before
// (CORS), a Date, "Connection: close" and neither chunking nor a length,
// so the body is the bare frames and ends with the connection.
func TestHijackedStreamHead(t *testing.T) {
	t.Parallel()
	h := start(t, `
cors { allow_origins = ["https://app.example.com"] }
route "/sse" {
  retry = "2s"
  source "nats" { subject = "events" }
}`)
	for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
		t.Run(proto, func(t *testing.T) {
			c, err := net.Dial("tcp", h.ts.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(wait))
			fmt.Fprintf(c, "GET /sse %s\r\nHost: x\r\nOrigin: https://app.example.com\r\nAccept: text/event-stream\r\n\r\n", proto)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{
				"Content-Type":                "text/event-stream; charset=utf-8",
				"Cache-Control":               "no-cache",
				"X-Accel-Buffering":           "no",
				"Access-Control-Allow-Origin": "https://app.example.com",
			}
			for k, v := range want {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/1.1" {
				t.Errorf("status line %s %s, want HTTP/1.1 200", resp.Proto, resp.Status)
			}
			if !resp.Close || resp.ContentLength != -1 || len(resp.TransferEncoding) != 0 {
				t.Errorf("close %v, length %d, transfer encoding %q: want a body that ends with the connection", resp.Close, resp.ContentLength, resp.TransferEncoding)
			}
			if d, err := http.ParseTime(resp.Header.Get("Date")); err != nil || time.Since(d) > time.Minute {
				t.Errorf("Date %q: %v", resp.Header.Get("Date"), err)
			}
			eventually(t, "the client to join", func() bool { return clientsOn(h, "/sse") == 1 })
			h.publish("events", "bare")
			// The body as the bytes on the wire: no chunk sizes.
			want1 := "retry: 2000\n"
			got := make([]byte, len(want1))
			if _, err := io.ReadFull(br, got); err != nil || string(got) != want1 {
				t.Fatalf("body starts %q (%v), want %q", got, err, want1)
			}
			id, err := br.ReadString('\n')
			if err != nil || !strings.HasPrefix(id, "id: ") {
				t.Fatalf("frame starts %q: %v", id, err)
			}
			if rest, err := br.ReadString('\n'); err != nil || rest != "data: bare\n" {
				t.Fatalf("frame goes on %q: %v", rest, err)
			}
			c.Close()
			eventually(t, "the client to leave", func() bool { return clientsOn(h, "/sse") == 0 })
		})
	}
}

// Idle HTTP/1.1 streams hold no goroutine: their connections wait in the
// hub, and a writer runs only while frames are queued.
func TestIdleStreamsHoldNoGoroutine(t *testing.T) {
	h := start(t, basicRoute)
	addr := h.ts.Listener.Addr().String()
	before := runtime.NumGoroutine()
	const n = 300
	conns := make([]*bufio.Reader, n)
	for i := range conns {
		_, conns[i] = rawStream(t, addr, "/sse")
	}
	eventually(t, "every client to join", func() bool { return clientsOn(h, "/sse") == n })
	// Each stream's handler returns once its head is out.
	eventually(t, "the handlers to return", func() bool { return runtime.NumGoroutine() < before+n/10 })

	// They all still get events.
	h.publish("events", "to all")
	for i, br := range conns {
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
			if line == "data: to all\n" {
				break
			}
		}
	}
	eventually(t, "the writers to finish", func() bool { return runtime.NumGoroutine() < before+n/10 })
}

// HTTP/1.1 over TLS is hijacked too: bursts are joined into one record,
// and the peer's end is seen on the connection under TLS.
func TestHijackedStreamOverTLS(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/sse" {
  buffer = 1000
  source "nats" { subject = "events" }
}`)
	ts := httptest.NewUnstartedServer(h.srv) // HTTP/1.1 only
	ts.StartTLS()
	defer ts.Close()
	c := ssetest.Open(t, ts.Client(), ts.URL+"/sse", nil)
	if c.Resp.ProtoMajor != 1 {
		t.Fatalf("protocol %s, want HTTP/1.1", c.Resp.Proto)
	}
	eventually(t, "the client to join", func() bool { return clientsOn(h, "/sse") == 1 })
	var want []string
	for i := range 500 {
		want = append(want, fmt.Sprint(i))
		h.publish("events", want[i])
	}
	c.ExpectData(want...)
	c.Close()
	eventually(t, "the client to leave", func() bool { return clientsOn(h, "/sse") == 0 })
}
