package proxy_test

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssegate/ssegate/internal/loopback"
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
	h := start(t, `
route "/sse" {
  source "nats" { subject = "events" }
}`)
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
		time.Sleep(100 * time.Millisecond)
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
