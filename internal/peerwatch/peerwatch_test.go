package peerwatch

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ssegate/ssegate/internal/loopback"
)

// opaque hides a connection's file descriptor, as a wrapping listener
// might: the watcher must fall back to reading.
type opaque struct{ net.Conn }

func newWatcher(t *testing.T) *Watcher {
	t.Helper()
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func expectCall(t *testing.T, ch <-chan struct{}, why string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: gone was not called", why)
	}
}

func expectNoCall(t *testing.T, ch <-chan struct{}, why string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s: gone was called", why)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestPeerEnds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		wrap func(net.Conn) net.Conn
	}{
		{"epoll", func(c net.Conn) net.Conn { return c }},
		{"reading", func(c net.Conn) net.Conn { return opaque{c} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWatcher(t)
			for _, end := range []struct {
				name string
				do   func(*net.TCPConn)
			}{
				{"close", func(c *net.TCPConn) { c.Close() }},
				{"half-close", func(c *net.TCPConn) { c.CloseWrite() }},
				{"reset", func(c *net.TCPConn) { c.SetLinger(0); c.Close() }},
			} {
				s, c := loopback.TCPPair(t)
				called := make(chan struct{}, 2)
				stop, err := w.Watch(tc.wrap(s), func() { called <- struct{}{} })
				if err != nil {
					t.Fatal(err)
				}
				// Bytes from a live peer are not its end.
				if _, err := c.Write([]byte("hello")); err != nil {
					t.Fatal(err)
				}
				expectNoCall(t, called, end.name+": data")
				// The server's own writes still go through.
				if _, err := s.Write([]byte("x")); err != nil {
					t.Fatal(err)
				}
				end.do(c)
				expectCall(t, called, end.name)
				stop()
				expectNoCall(t, called, end.name+": twice")
			}
		})
	}
}

// awaitHangup returns once c's peer has closed its side, as c's kernel
// sees it.
func awaitHangup(t *testing.T, c *net.TCPConn) {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if cerr := raw.Control(func(fd uintptr) {
		for deadline := time.Now().Add(10 * time.Second); ; {
			// The runtime's signals interrupt poll: go on until the deadline.
			n, err = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}, int(time.Until(deadline).Milliseconds()))
			if err != unix.EINTR || time.Now().After(deadline) {
				return
			}
		}
	}); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil || n != 1 {
		t.Fatalf("peer's close not seen within 10 s: %d, %v", n, err)
	}
}

// A peer that had already closed before Watch is reported too.
func TestPeerClosedBeforeWatch(t *testing.T) {
	t.Parallel()
	w := newWatcher(t)
	s, c := loopback.TCPPair(t)
	c.Close()
	awaitHangup(t, s)
	called := make(chan struct{}, 1)
	if _, err := w.Watch(s, func() { called <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	expectCall(t, called, "closed before")
}

// After stop, and after the server closes its side, nothing is reported,
// even when the descriptor number is reused by a new connection.
func TestStopped(t *testing.T) {
	t.Parallel()
	w := newWatcher(t)
	s, c := loopback.TCPPair(t)
	called := make(chan struct{}, 1)
	stop, err := w.Watch(s, func() { called <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	stop()
	s.Close()
	c.Close()
	expectNoCall(t, called, "stopped")

	s2, c2 := loopback.TCPPair(t)
	called2 := make(chan struct{}, 1)
	if _, err := w.Watch(s2, func() { called2 <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	c2.Close()
	expectCall(t, called2, "the next connection")
	expectNoCall(t, called, "the stopped one, on reuse")
}

func TestClosedWatcher(t *testing.T) {
	t.Parallel()
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s, _ := loopback.TCPPair(t)
	if _, err := w.Watch(s, func() {}); err != ErrClosed {
		t.Fatalf("Watch after Close: %v, want ErrClosed", err)
	}
	if err := w.Close(); err != ErrClosed {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
}

// Many watched connections cost no goroutine each.
func BenchmarkWatch(b *testing.B) {
	w, err := New()
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	for b.Loop() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		gone := make(chan struct{})
		stop, err := w.Watch(s, func() { close(gone) })
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
		<-gone
		stop()
		s.Close()
	}
}
