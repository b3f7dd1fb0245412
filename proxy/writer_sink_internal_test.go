package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/internal/peerwatch"

	"github.com/ssegate/ssegate/proxy/config"
)

// gate is a sink whose first write waits until opened, and which records
// every write.
type gate struct {
	open   chan struct{}
	mu     sync.Mutex
	writes [][][]byte
}

func (g *gate) write(frames [][]byte) (int64, error) {
	g.mu.Lock()
	first := len(g.writes) == 0
	g.writes = append(g.writes, append([][]byte(nil), frames...))
	g.mu.Unlock()
	if first {
		<-g.open
	}
	return 0, nil
}
func (g *gate) setDeadline(time.Time) error { return nil }
func (g *gate) abort()                      {}
func (g *gate) close(bool)                  {}

func (g *gate) count() (writes, frames int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, w := range g.writes {
		frames += len(w)
	}
	return len(g.writes), frames
}

func testWriter(t testing.TB, sk sink) *writer {
	rt := &config.Route{Path: "/sse", WriteTimeout: time.Minute, Buffer: 1000}
	return &writer{sink: sk, hurry: t.Context(), rt: rt, m: newMetrics(&Server{}).route(rt), end: func(string) {}}
}

// Frames queued while a write is under way go out together in the next
// write: a burst costs two writes, not one per event.
func TestBurstIsCoalesced(t *testing.T) {
	t.Parallel()
	g := &gate{open: make(chan struct{})}
	c := newClient(nil, 1000)
	c.start(testWriter(t, g), 0, time.Time{})
	c.push([]byte("0"))
	for {
		if w, _ := g.count(); w == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for i := 1; i < 100; i++ {
		c.push(fmt.Appendf(nil, "%d", i))
	}
	close(g.open)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, f := g.count(); f == 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the burst was not written")
		}
		time.Sleep(time.Millisecond)
	}
	writes, _ := g.count()
	if writes != 2 {
		t.Errorf("100 frames took %d writes, want 2", writes)
	}
	i := 0
	for _, w := range g.writes {
		for _, f := range w {
			if string(f) != fmt.Sprint(i) {
				t.Fatalf("frame %d is %q", i, f)
			}
			i++
		}
	}
}

// A TCP connection's sink writes a batch whole and in order with writev,
// with more frames than one writev takes and more bytes than the socket
// buffers hold. (TLS, which joins a batch instead, is in peers_test.)
func TestConnSinkWritesBatches(t *testing.T) {
	t.Parallel()
	frames := make([][]byte, 3000)
	var want bytes.Buffer
	for i := range frames {
		frames[i] = bytes.Repeat([]byte{byte('a' + i%26)}, 1+i%700)
		want.Write(frames[i])
	}
	server, client := loopback.TCPPair(t)
	var lingering sync.WaitGroup
	cs := newConnSink(server, func() {}, &lingering)
	if !cs.vectored {
		t.Fatal("a TCP connection's sink does not write vectors")
	}
	read := make(chan []byte)
	go func() {
		got, _ := io.ReadAll(client)
		read <- got
	}()
	batch := append([][]byte(nil), frames...) // the sink may change its batch
	n, err := cs.write(batch)
	if err != nil || n != int64(want.Len()) {
		t.Fatalf("wrote %d of %d bytes: %v", n, want.Len(), err)
	}
	cs.close(true) // the reader sees the end at once: the FIN, not the close that follows
	if got := <-read; !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("read %d bytes, not the %d written, in order", len(got), want.Len())
	}
	for i := range frames {
		if len(frames[i]) != 1+i%700 {
			t.Fatal("writing changed the frames")
		}
	}
}

// Whatever headers a handler or middleware set, the hand-written head is
// a well-formed 200 response that ends with the connection, and no value
// can smuggle in a header or a body.
func FuzzStreamHead(f *testing.F) {
	f.Add("Access-Control-Allow-Origin", "https://app.example.com")
	f.Add("X-Evil", "a\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK")
	f.Add("Transfer-Encoding", "chunked")
	f.Add("Bad Name", "v")
	f.Add("X-Unicode", "caf\u00e9 \x00\x7f")
	f.Fuzz(func(t *testing.T, key, value string) {
		h := http.Header{}
		h.Set("Content-Type", "text/event-stream; charset=utf-8")
		h[key] = []string{value}
		head := streamHead(h, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(append(head, "data: x\n\n"...))), nil)
		if err != nil {
			t.Fatalf("head %q does not parse: %v", head, err)
		}
		if resp.StatusCode != http.StatusOK || !resp.Close || resp.ContentLength != -1 || len(resp.TransferEncoding) != 0 {
			t.Fatalf("head %q: status %d, close %v, length %d, encoding %q", head, resp.StatusCode, resp.Close, resp.ContentLength, resp.TransferEncoding)
		}
		for k := range resp.Header {
			switch k {
			case "Content-Type", "Date", "Connection", http.CanonicalHeaderKey(key):
			default:
				t.Fatalf("head %q has a header %q nobody set", head, k)
			}
		}
		if body, err := io.ReadAll(resp.Body); err != nil || string(body) != "data: x\n\n" {
			t.Fatalf("head %q: body %q, %v", head, body, err)
		}
	})
}

// A stream that ended with its last frame half-closes its connection and
// closes it once the client closes its side, without waiting out the
// linger; a client that does not is closed when the linger ends.
func TestGracefulCloseWaitsForThePeer(t *testing.T) {
	t.Parallel()
	pw, err := peerwatch.New()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	waitFor := func(wg *sync.WaitGroup, what string) {
		t.Helper()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the connection was not closed", what)
		}
	}
	for _, peerCloses := range []bool{true, false} {
		server, client := loopback.TCPPair(t)
		var lingering sync.WaitGroup
		cs := newConnSink(server, func() { t.Error("a half-closed client was taken for one that left") }, &lingering)
		cs.linger = time.Hour
		if !peerCloses {
			cs.linger = 50 * time.Millisecond
		}
		if cs.stopWatch, err = pw.Watch(server, cs.peerGone); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.write([][]byte{[]byte("data: last\n\n")}); err != nil {
			t.Fatal(err)
		}
		cs.close(true)
		if got, err := io.ReadAll(client); err != nil || string(got) != "data: last\n\n" {
			t.Fatalf("read %q, %v: want the last frame, then the end", got, err)
		}
		if peerCloses {
			client.Close()
		}
		waitFor(&lingering, fmt.Sprint("peer closes: ", peerCloses))
	}
}

// The lifecycle moves only forward, along the moves its comment draws:
// once lost a client is not closed gracefully, once over nothing moves it.
func TestClientLifecycleMoves(t *testing.T) {
	t.Parallel()
	legal := map[[2]lifecycle]bool{
		{open, closing}: true, {open, lost}: true, {open, over}: true,
		{closing, draining}: true, {closing, lost}: true, {closing, over}: true,
		{draining, closed}: true, {draining, lost}: true,
		{closed, over}: true, {lost, over}: true,
	}
	all := []lifecycle{open, closing, draining, closed, lost, over}
	for _, from := range all {
		for _, to := range all {
			c := &Client{state: from}
			if got := c.moveTo(to); got != legal[[2]lifecycle{from, to}] || (got && c.state != to) || (!got && c.state != from) {
				t.Errorf("move %d -> %d: %v, now %d", from, to, got, c.state)
			}
		}
	}
}
