package proxy

import (
	"errors"
	"net/http"
	"sync"

	"github.com/ssegate/ssegate/proxy/sse"
)

// ErrClientGone is returned by Client.Send once the client has left or
// been dropped.
var ErrClientGone = errors.New("client gone")

// Client is one connected EventSource: a bounded queue of encoded frames
// that the stream fills and the connection's writer drains. It knows
// nothing of HTTP beyond the request that opened it, so the writer can
// change without touching the hub.
type Client struct {
	req *http.Request

	mu       sync.Mutex
	queue    [][]byte
	backlog  int // frames queued on joining (replay), not counted against limit
	limit    int
	gone     bool
	holding  bool          // live frames wait in held while a replay is fetched
	held     [][]byte      // at most limit; beyond, they are dropped and overflow set
	overflow bool          // held frames were dropped: the replay must fetch them
	left     chan struct{} // closed when the client is dropped
	ended    chan struct{} // closed when the stream ends it: final goes last
	final    []byte
	wake     chan struct{} // a token when the queue went from empty to not

	slot int // index in the stream's client list, guarded by the stream's lock
	// skipThrough: with a JetStream history, live events up to this
	// sequence are not for this client, who resumed from an id this
	// replica had not delivered yet. Guarded by the stream's lock.
	skipThrough uint64
}

func newClient(r *http.Request, limit int) *Client {
	return &Client{
		req:   r,
		limit: limit,
		left:  make(chan struct{}),
		ended: make(chan struct{}),
		wake:  make(chan struct{}, 1),
		slot:  -1,
	}
}

// Request returns the HTTP request that opened the stream.
func (c *Client) Request() *http.Request { return c.req }

// Send queues an event for this client only. Events sent from an OnConnect
// hook arrive before any replayed or live event.
func (c *Client) Send(e sse.Event) error {
	if !c.push(e.Encode()) {
		return ErrClientGone
	}
	return nil
}

// push queues a frame without blocking. A client whose queue is full is
// dropped instead: it reconnects and resumes from history, and nobody else
// waits for it.
func (c *Client) push(frame []byte) bool {
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		return false
	}
	if c.holding {
		// Held frames are also in the history the replay reads: too many
		// are dropped here and fetched there instead.
		switch {
		case c.overflow:
		case len(c.held) >= c.limit:
			c.held, c.overflow = nil, true
		default:
			c.held = append(c.held, frame)
		}
		c.mu.Unlock()
		return true
	}
	if len(c.queue)-c.backlog >= c.limit {
		c.drop()
		c.mu.Unlock()
		return false
	}
	c.queue = append(c.queue, frame)
	c.mu.Unlock()
	c.signal()
	return true
}

// preload queues frames that are not held against the limit: the replay a
// client asked for by resuming.
func (c *Client) preload(frames ...[]byte) {
	c.mu.Lock()
	c.queue = append(c.queue, frames...)
	c.backlog += len(frames)
	c.mu.Unlock()
	c.signal()
}

// hold keeps live frames back until unhold: a replay fetched elsewhere
// goes first.
func (c *Client) hold() {
	c.mu.Lock()
	c.holding = true
	c.mu.Unlock()
}

// release queues replayed frames, then the live frames held meanwhile,
// and ends the hold. When held frames were dropped it queues the replay
// only, keeps holding and returns false: the caller fetches what was
// dropped and calls again. force ends the hold anyway, dropping what is
// held. Called with the stream's lock held, so no live frame comes between.
func (c *Client) release(frames [][]byte, force bool) bool {
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		return true
	}
	c.queue = append(c.queue, frames...)
	c.backlog += len(frames)
	done := force || !c.overflow
	if done {
		if !c.overflow {
			c.queue = append(c.queue, c.held...)
		}
		c.holding = false
	}
	c.held, c.overflow = nil, false
	c.mu.Unlock()
	c.signal()
	return done
}

// discardHeld drops the live frames held so far.
func (c *Client) discardHeld() {
	c.mu.Lock()
	c.held = nil
	c.mu.Unlock()
}

// overflowed reports whether held frames were dropped.
func (c *Client) overflowed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.overflow
}

// take hands the queued frames to the writer and gives the queue spare to
// fill next, so a steady stream reuses two slices.
func (c *Client) take(spare [][]byte) [][]byte {
	c.mu.Lock()
	out := c.queue
	c.queue = spare[:0]
	c.backlog = 0
	c.mu.Unlock()
	return out
}

// close marks a client that left gone, so a hook that kept it gets
// ErrClientGone from Send instead of filling a queue nobody reads.
func (c *Client) close() {
	c.mu.Lock()
	c.drop()
	c.queue = nil
	c.mu.Unlock()
}

// finish ends the client's stream after what is queued, with frame last
// (a retry hint), so it reconnects; a client already gone is left alone.
func (c *Client) finish(frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone || c.final != nil {
		return
	}
	c.final = frame
	close(c.ended)
}

// drop marks the client gone; called with c.mu held.
func (c *Client) drop() {
	if !c.gone {
		c.gone = true
		close(c.left)
	}
}

func (c *Client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}
