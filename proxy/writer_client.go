package proxy

import (
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/ssegate/ssegate/sse"
)

// ErrClientGone is returned by Client.Send once the client has left or
// been dropped.
var ErrClientGone = errors.New("client gone")

// Client is one connected EventSource: a bounded queue of encoded frames
// that the stream fills and a writer drains into the client's sink. It
// knows nothing of how the client was accepted: a hijacked HTTP/1.1
// connection and an HTTP/2 handler share every behaviour but the sink.
//
// An idle client holds no goroutine: a writer runs only while frames are
// queued, and timers (keepalive, token expiry, max_stream_duration) call
// back when they fire.
type Client struct {
	req *http.Request
	// claims are the client's, on a route with auth: what a Revocation
	// selects by. They are the map auth made for allow, kept.
	claims map[string]any
	// present: its join was announced (see Server.announce), so its
	// leave is too. Set before the client starts.
	present bool

	mu      sync.Mutex
	state   lifecycle
	queue   [][]byte
	spare   [][]byte // the queue last written, emptied, for the next burst
	backlog int      // frames queued on joining (replay), not counted against limit
	limit   int
	hold    resumeHold // live frames kept back while a replay is fetched
	// dropOldest: over limit, the oldest queued events are dropped (and
	// the client told) instead of the client (slow_consumer = "drop").
	dropOldest bool
	missed     missed // dropped since the writer last took the queue
	// conflate: an event queued replaces the one of its key still queued
	// (slow_consumer = "latest"); keys are those of the live frames
	// queued (after backlog), "" for none.
	conflate bool
	keys     []string

	// The writing side, set by start; before it, frames only queue.
	out          *writer
	writing      bool   // a writer goroutine runs, or is about to
	inWrite      bool   // it is in a write to the sink, maybe waiting on the socket
	final        []byte // the stream's end, written after what is queued
	finalEvents  int    // how many of final's frames are events
	keepaliveDue bool
	why          string         // why the stream ended, for the log
	slow         slowness       // why a slow client was dropped, for the metrics
	aborting     sync.WaitGroup // sink aborts under way, which the end waits for
	done         chan struct{}  // closed when over; made by Done

	slot int // index in the stream's client list, guarded by the stream's lock
	// epoch is the NATS connection's when the client joined (see
	// stream.gap). Guarded by the stream's lock.
	epoch uint64
	// skipThrough: with a JetStream history, live events up to this
	// sequence are not for this client, who resumed from an id this
	// replica had not delivered yet. Guarded by the stream's lock.
	skipThrough uint64
}

// slowness is why a slow client was dropped.
type slowness uint8

const (
	notSlow slowness = iota
	slowQueueFull
	slowWriteTimeout
)

func newClient(r *http.Request, limit int) *Client {
	return &Client{req: r, limit: limit, slot: -1}
}

// Request returns the HTTP request that opened the stream, for an
// OnConnect hook and whatever it hands the client to. Its context ends
// when the request's handling does, which for an HTTP/1.1 stream is once
// the response head is out; Done tells when the client is gone.
func (c *Client) Request() *http.Request { return c.req }

// Done returns a channel that is closed once the client's stream is over:
// it left, was dropped, or the stream ended it.
func (c *Client) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.state == over {
			close(c.done)
		}
	}
	return c.done
}

// Send queues an event for this client only. Events sent from an OnConnect
// hook arrive before any replayed or live event.
func (c *Client) Send(e sse.Event) error {
	if ok, _ := c.push(e.Encode()); !ok {
		return ErrClientGone
	}
	return nil
}

// Close ends this client's stream after what is queued for it, as the
// Node library's client.close() does; the stream's other clients go on.
// With retry above zero a retry: hint asks EventSource to wait that long
// before it reconnects (it always does: only a status other than 200
// stops it). Closing a client that is gone or ending does nothing.
func (c *Client) Close(retry time.Duration) {
	var frame []byte
	if retry > 0 {
		frame = sse.AppendRetry(frame, retry)
	}
	c.finish(sse.AppendComment(frame, "closed"), 0, "closed by the application")
}

// push queues a frame without blocking, and reports whether it did and
// whether the client's queue is half full (pressed: see yieldToWriters).
// A client whose queue is full is dropped instead, unless its
// slow_consumer policy drops or conflates events: it reconnects and
// resumes from history, and nobody else waits for it.
func (c *Client) push(frame []byte) (ok, pressed bool) {
	return c.pushKeyed(frame, "")
}

// pushKeyed is push for a frame of conflation key key ("": none). On a
// client that conflates, a queued frame of the same key is replaced: the
// new one goes last, so ids still come in order.
func (c *Client) pushKeyed(frame []byte, key string) (ok, pressed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.takesFrames() {
		return false, false
	}
	if c.hold.on {
		c.hold.keep(frame, c.limit)
		return true, false
	}
	if c.conflate && key != "" {
		if j := slices.Index(c.keys, key); j >= 0 {
			c.queue = slices.Delete(c.queue, c.backlog+j, c.backlog+j+1)
			c.keys = slices.Delete(c.keys, j, j+1)
		}
	}
	queued := len(c.queue) - c.backlog
	if queued >= c.limit {
		if !c.dropOldest {
			if c.lose("slow client dropped: its queue overflowed") {
				c.slow = slowQueueFull
			}
			return false, false
		}
		c.missed.add(c.queue[c.backlog])
		c.queue = slices.Delete(c.queue, c.backlog, c.backlog+1)
		if c.conflate {
			c.keys = slices.Delete(c.keys, 0, 1)
		}
		queued--
	}
	c.queue = append(c.queue, frame)
	if c.conflate {
		c.keys = append(c.keys, key)
	}
	c.kick()
	// Making way helps a writer that is about to run, not one waiting on
	// its socket; and a client that drops or conflates loses nothing to a
	// full queue but what its policy says.
	return true, !c.dropOldest && c.writing && !c.inWrite && 2*(queued+1) >= c.limit
}

// preload queues frames that are not held against the limit: the replay a
// client asked for by resuming.
func (c *Client) preload(frames ...[]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queue = append(c.queue, frames...)
	c.backlog += len(frames)
	c.kick()
}

// finish ends the client's stream after what is queued, with frame last
// (a retry hint, say), so it reconnects; events counts the frames of frame
// that are events. A client already gone or ending is left alone.
func (c *Client) finish(frame []byte, events int, why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.moveTo(closing) {
		return
	}
	c.final, c.finalEvents, c.why = frame, events, why
	c.kick()
}

// leave ends the stream of a client whose peer went away: nothing more is
// written.
func (c *Client) leave() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lose("client left")
}

// lose stops all writing to the client and has its end run; it reports
// whether this call did it. Called with c.mu held, maybe with the stream's
// too: what can block runs on another goroutine.
func (c *Client) lose(why string) bool {
	if !c.moveTo(lost) {
		return false
	}
	if c.why == "" {
		c.why = why
	}
	c.queue, c.spare, c.keys = nil, nil, nil
	if c.out == nil || c.out.sink == nil {
		return true // start or fail runs the end
	}
	// A write under way may block until its deadline: the sink's abort
	// ends it now. With no writer running, one is started to run the end.
	run := !c.writing
	c.writing = true
	c.aborting.Add(1)
	go func() {
		c.out.sink.abort()
		c.aborting.Done()
		if run {
			c.run()
		}
	}()
	return true
}

// start hands the client its writer: queued frames go out from now on,
// a keepalive comment after each keepalive period of silence, and the
// stream ends at lifetime (when not zero) or when the token expires
// (when not zero).
func (c *Client) start(o *writer, lifetime time.Duration, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out = o
	if c.stopped() {
		// Lost before it started: only the end is left to run.
		c.writing = true
		go c.run()
		return
	}
	if k := o.rt.Keepalive; k > 0 {
		o.keepalive = time.AfterFunc(k, c.keepalive)
		o.timers = append(o.timers, o.keepalive)
	}
	if lifetime > 0 {
		frame := reconnectFrame(o.rt, endOfLifeRetry, "max_stream_duration reached; reconnect")
		o.timers = append(o.timers, time.AfterFunc(lifetime, func() {
			c.finish(frame, 0, "stream ended at max_stream_duration")
		}))
	}
	if !expires.IsZero() {
		o.timers = append(o.timers, time.AfterFunc(time.Until(expires), func() {
			c.finish(authExpiredFrame, 1, "stream closed: its token expired")
		}))
	}
	c.kick()
}

// hurry makes a write under way, and every later one, fail at once.
func (c *Client) hurry() {
	// Under the lock, so that the end, and the handler's return, wait.
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != over && c.out != nil && c.out.sink != nil {
		_ = c.out.sink.setDeadline(time.Now())
	}
}

// fail ends a client whose stream could not start.
func (c *Client) fail(o *writer, why string) {
	c.mu.Lock()
	c.out = o
	c.lose(why)
	c.mu.Unlock()
	c.end()
}

// discard ends a client that never joined a stream, for a hook that kept
// it: Send fails and Done is closed.
func (c *Client) discard(m *routeMetrics) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.slow == slowQueueFull { // its hook sent more than it may queue
		m.queueFull.Inc()
	}
	c.moveTo(over)
	if c.done != nil {
		close(c.done)
	}
}

// end takes the client out of its stream, once.
func (c *Client) end() {
	c.mu.Lock()
	graceful := c.state == closed
	if !c.moveTo(over) {
		c.mu.Unlock()
		return
	}
	done, why, slow := c.done, c.why, c.slow
	c.mu.Unlock()
	// A handler's writer must not be touched once the handler returns,
	// which closing done lets it do.
	c.aborting.Wait()
	o := c.out
	for _, t := range o.timers {
		t.Stop()
	}
	if o.sink != nil {
		o.sink.close(graceful)
	}
	switch slow {
	case slowQueueFull:
		o.m.queueFull.Inc()
	case slowWriteTimeout:
		o.m.writeTimeout.Inc()
	}
	o.end(why)
	if done != nil {
		close(done)
	}
}
