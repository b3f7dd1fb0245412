package loopback

import (
	"errors"
	"net"
	"sync"
	"testing"
)

// Link is a TCP relay on 127.0.0.1 to a target address whose traffic a
// test can hold back: a slow or stalled network path, without closing
// anything.
type Link struct {
	ln     net.Listener
	target string
	gate   sync.RWMutex // held for writing while paused
	mu     sync.Mutex
	conns  []net.Conn
	down   bool // connections are refused (see Down)
}

// NewLink relays to target until the test ends.
func NewLink(t testing.TB, target string) *Link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Link{ln: ln, target: target}
	go l.accept()
	t.Cleanup(l.close)
	return l
}

// Addr is where to connect instead of the target.
func (l *Link) Addr() string { return l.ln.Addr().String() }

// Pause holds back every byte, both ways, until Resume.
func (l *Link) Pause() { l.gate.Lock() }

// Resume lets the held bytes through.
func (l *Link) Resume() { l.gate.Unlock() }

// Down cuts every connection and refuses new ones until Up: the path is
// gone, and a client's reconnects fail.
func (l *Link) Down() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = true
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

// Up lets connections through again.
func (l *Link) Up() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = false
}

func (l *Link) accept() {
	for {
		in, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		down := l.down
		l.mu.Unlock()
		if down {
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", l.target)
		if err != nil {
			in.Close()
			continue
		}
		l.mu.Lock()
		l.conns = append(l.conns, in, out)
		l.mu.Unlock()
		go l.relay(in, out)
		go l.relay(out, in)
	}
}

// relay copies from src to dst, each write waiting while the link is
// paused.
func (l *Link) relay(src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			l.gate.RLock()
			_, werr := dst.Write(buf[:n])
			l.gate.RUnlock()
			if werr != nil {
				err = errors.Join(err, werr)
			}
		}
		if err != nil {
			src.Close()
			dst.Close()
			return
		}
	}
}

func (l *Link) close() {
	l.ln.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
}

// TCPPair returns both ends of a TCP connection on 127.0.0.1, closed when
// the test ends.
func TCPPair(t testing.TB) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return s.(*net.TCPConn), c.(*net.TCPConn)
}
