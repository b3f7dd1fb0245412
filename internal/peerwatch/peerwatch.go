// Package peerwatch tells when the peer of a connection nobody reads from
// has closed it or gone away, without a goroutine per connection where the
// kernel can tell (epoll on Linux).
//
// A server that only ever writes to a connection learns of a closed peer
// at its next write, which for an idle stream may be a keepalive period
// away; meanwhile the connection holds its file, its slot in the limits
// and its stream. A Watcher ends that wait: it calls back as soon as the
// peer's FIN or RST arrives.
package peerwatch

import (
	"errors"
	"net"
	"sync"
)

// ErrClosed is returned by Watch once the Watcher is closed.
var ErrClosed = errors.New("peerwatch: watcher closed")

// socket returns the connection whose file descriptor the kernel watches:
// a TLS connection's underlying one, or conn itself.
func socket(conn net.Conn) net.Conn {
	for {
		nc, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			return conn
		}
		conn = nc.NetConn()
	}
}

// watchByReading is the portable way: a goroutine blocked in a read that
// ends with the connection. Bytes the peer sends are read and dropped, so
// it serves only connections whose reading side nobody else uses.
func watchByReading(conn net.Conn, gone func()) (stop func()) {
	var once sync.Once
	stopped := make(chan struct{})
	go func() {
		buf := make([]byte, 512)
		for {
			if _, err := conn.Read(buf); err != nil {
				select {
				case <-stopped:
				default:
					once.Do(gone)
				}
				return
			}
		}
	}()
	// The reader ends when the connection is closed, which the caller does
	// next; gone must not be called for that.
	return func() { close(stopped); once.Do(func() {}) }
}
