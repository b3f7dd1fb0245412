//go:build !linux

package peerwatch

import (
	"net"
	"sync"
)

// Watcher watches connections with a reading goroutine each: this system
// has no readiness interface the package uses.
type Watcher struct {
	mu     sync.Mutex
	closed bool
}

// New returns a Watcher. Close stops it.
func New() (*Watcher, error) { return &Watcher{}, nil }

// Watch calls gone, once, when conn's peer closes or resets it. Call stop
// before closing conn; gone is not called after stop returns. Bytes the
// peer sends are read and dropped. gone must not block.
func (w *Watcher) Watch(conn net.Conn, gone func()) (stop func(), err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, ErrClosed
	}
	return watchByReading(conn, gone), nil
}

// Close stops the Watcher from taking connections.
func (w *Watcher) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	w.closed = true
	return nil
}
