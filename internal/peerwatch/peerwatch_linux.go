package peerwatch

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Watcher watches many connections with one epoll set and one goroutine.
type Watcher struct {
	epfd, wakefd int

	mu     sync.Mutex
	next   uint64 // 0 is the wake-up descriptor
	peers  map[uint64]func()
	closed bool
	done   chan struct{}
}

// New starts a Watcher. Close stops it.
func New() (*Watcher, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &unix.EpollEvent{Events: unix.EPOLLIN}); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	w := &Watcher{epfd: epfd, wakefd: wakefd, peers: map[uint64]func(){}, done: make(chan struct{})}
	go w.loop()
	return w, nil
}

// Watch calls gone, once, from the Watcher's goroutine, when conn's peer
// closes its side (even half: an HTTP/1.1 client that sends FIN is done)
// or resets the connection. Call stop before closing conn; gone is not
// called after stop returns. Bytes the peer sends are left unread.
// gone must not block.
func (w *Watcher) Watch(conn net.Conn, gone func()) (stop func(), err error) {
	sc, ok := socket(conn).(syscall.Conn)
	if !ok {
		return watchByReading(conn, gone), nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("peerwatch: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, ErrClosed
	}
	w.next++
	id := w.next
	// Edge-triggered and only for the end of the peer's stream: bytes it
	// sends, which nobody reads, do not wake the watcher again and again.
	ev := unix.EpollEvent{Events: unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
	var ctlErr error
	if err := rc.Control(func(fd uintptr) {
		ctlErr = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	}); err != nil {
		return nil, fmt.Errorf("peerwatch: %w", err)
	}
	if ctlErr != nil {
		return nil, fmt.Errorf("peerwatch: epoll_ctl: %w", ctlErr)
	}
	w.peers[id] = gone
	return func() {
		w.mu.Lock()
		delete(w.peers, id)
		closed := w.closed
		w.mu.Unlock()
		if !closed {
			// Closing the descriptor would take it out of the set too,
			// but only once every copy of it is closed.
			_ = rc.Control(func(fd uintptr) { _ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, int(fd), nil) })
		}
	}, nil
}

// Close stops the Watcher and waits for its goroutine; connections still
// watched are not reported.
func (w *Watcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.closed = true
	w.mu.Unlock()
	var one [8]byte
	one[0] = 1 // an eventfd counter, in the machine's byte order: any non-zero value wakes
	if _, err := unix.Write(w.wakefd, one[:]); err != nil && !errors.Is(err, unix.EAGAIN) {
		return fmt.Errorf("peerwatch: wake: %w", err)
	}
	<-w.done
	unix.Close(w.wakefd)
	return unix.Close(w.epfd)
}

func (w *Watcher) loop() {
	defer close(w.done)
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(w.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			// Only a bad epoll descriptor gets here, which Close alone makes.
			return
		}
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if id == 0 {
				return
			}
			// Called under the lock, so that stop, once it returns, has
			// no call running or to come.
			w.mu.Lock()
			if gone := w.peers[id]; gone != nil {
				delete(w.peers, id)
				gone()
			}
			w.mu.Unlock()
		}
	}
}
