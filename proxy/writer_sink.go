package proxy

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ssegate/ssegate/internal/peerwatch"
)

// sink is where a client's frames are written: a hijacked HTTP/1.1
// connection, or the ResponseWriter of a handler that stays for the
// stream's life (HTTP/2, and writers that cannot hand their connection
// over).
type sink interface {
	// write writes the frames in order, all or until an error; it
	// returns the bytes written.
	write(frames [][]byte) (int64, error)
	setDeadline(t time.Time) error
	// abort makes a write under way, and every later one, fail now. It
	// may be called while write runs.
	abort()
	// close follows the last write; graceful when the stream's last frame
	// went out, as opposed to a client lost or dropped.
	close(graceful bool)
}

// connSink writes to a connection taken out of net/http after the
// response head: nothing else holds it, no goroutine waits on it.
type connSink struct {
	conn net.Conn
	// vectored: the connection writes a batch with one writev; others
	// (TLS) get it joined into one buffer, which is one record.
	vectored bool
	// stopWatch stops watching for the peer's end, which calls peerGone;
	// set before the client starts.
	stopWatch func()
	left      func()          // the client's leave
	lingering *sync.WaitGroup // half-closed connections not yet closed
	linger    time.Duration   // lingerBeforeClose, but in tests

	mu      sync.Mutex
	half    bool // half-closed: the peer's end, or the linger's, closes it
	lingers bool // counted in lingering
	closed  bool
}

var _ sink = (*connSink)(nil)

func newConnSink(conn net.Conn, left func(), lingering *sync.WaitGroup) *connSink {
	_, tcp := conn.(*net.TCPConn)
	_, unix := conn.(*net.UnixConn)
	return &connSink{conn: conn, vectored: tcp || unix, left: left, lingering: lingering, linger: lingerBeforeClose}
}

// joined holds the buffers a batch is joined into for connections that
// cannot write vectors.
var joined = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (cs *connSink) write(frames [][]byte) (int64, error) {
	if len(frames) == 1 {
		n, err := cs.conn.Write(frames[0])
		return int64(n), err
	}
	if cs.vectored {
		bufs := net.Buffers(frames) // WriteTo consumes a copy of the slice header
		return bufs.WriteTo(cs.conn)
	}
	b := joined.Get().(*bytes.Buffer)
	defer joined.Put(b)
	b.Reset()
	for _, f := range frames {
		b.Write(f)
	}
	n, err := cs.conn.Write(b.Bytes())
	return int64(n), err
}

func (cs *connSink) setDeadline(t time.Time) error { return cs.conn.SetWriteDeadline(t) }

func (cs *connSink) abort() { _ = cs.conn.Close() }

// lingerBeforeClose is how long a gracefully ended connection may stay
// half-closed, as net/http does: closing a socket that holds unread bytes
// (anything the client sent after its request) sends a reset, which can
// destroy the last frames before the client has read them. It is closed
// as soon as the client closes its side, usually a round trip later.
const lingerBeforeClose = 500 * time.Millisecond

func (cs *connSink) close(graceful bool) {
	if graceful {
		cs.mu.Lock()
		cs.half = true
		cs.mu.Unlock()
		if closeWrite(cs.conn) == nil {
			cs.mu.Lock()
			if !cs.closed { // the peer's end may have closed it already
				cs.lingers = true
				cs.lingering.Add(1)
			}
			cs.mu.Unlock()
			time.AfterFunc(cs.linger, func() { cs.closeNow(true) })
			return
		}
	}
	cs.closeNow(true)
}

// peerGone is the peer watch's call when the client closed its side: a
// live stream's client has left; a half-closed one can be closed now.
// It runs under the watcher's lock: it must not stop the watch.
func (cs *connSink) peerGone() {
	cs.mu.Lock()
	half := cs.half
	cs.mu.Unlock()
	if !half {
		cs.left()
		return
	}
	cs.closeNow(false)
}

// closeNow closes the connection, once; stop says whether the watch is
// still to be stopped.
func (cs *connSink) closeNow(stop bool) {
	cs.mu.Lock()
	if cs.closed {
		cs.mu.Unlock()
		return
	}
	cs.closed = true
	lingers := cs.lingers
	cs.mu.Unlock()
	if stop && cs.stopWatch != nil {
		cs.stopWatch()
	}
	_ = cs.conn.Close()
	if lingers {
		cs.lingering.Done()
	}
}

// closeWrite sends the end of the stream: TLS's close_notify, then TCP's
// FIN.
func closeWrite(conn net.Conn) error {
	type closeWriter interface{ CloseWrite() error }
	for {
		cw, ok := conn.(closeWriter)
		if !ok {
			return errors.ErrUnsupported
		}
		if err := cw.CloseWrite(); err != nil {
			return err
		}
		nc, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		conn = nc.NetConn()
	}
}

// handlerSink writes through a ResponseWriter; its handler waits for the
// client's end, since nothing may write to it after the handler returns.
type handlerSink struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

var _ sink = (*handlerSink)(nil)

func newHandlerSink(w http.ResponseWriter) *handlerSink {
	return &handlerSink{w: w, rc: http.NewResponseController(w)}
}

func (hs *handlerSink) write(frames [][]byte) (int64, error) {
	var written int64
	for _, f := range frames {
		n, err := hs.w.Write(f)
		written += int64(n)
		if err != nil {
			return written, err
		}
	}
	return written, hs.rc.Flush()
}

// setDeadline bounds writes where the writer can. Middleware that hides
// the connection cannot: the stream still works, it just relies on TCP to
// notice a dead peer.
func (hs *handlerSink) setDeadline(t time.Time) error {
	if err := hs.rc.SetWriteDeadline(t); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

func (hs *handlerSink) abort() { _ = hs.setDeadline(time.Now()) }

func (hs *handlerSink) close(bool) {}

// peerWatcher returns the Watcher that learns when hijacked clients go.
func (s *Server) peerWatcher() (*peerwatch.Watcher, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.peers == nil {
		pw, err := peerwatch.New()
		if err != nil {
			return nil, err
		}
		s.peers = pw
	}
	return s.peers, nil
}
