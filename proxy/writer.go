package proxy

import (
	"context"
	"errors"
	"os"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ssegate/ssegate/proxy/config"
)

// writer is how a started client's frames leave: where they go, with what
// deadline, and what happens when the stream is over.
type writer struct {
	sink  sink
	rt    *config.Route
	m     *routeMetrics
	end   func(why string) // leaves the stream and frees what the client held
	hurry context.Context  // ends when Shutdown runs short of time: writes fail at once

	keepalive *time.Timer   // guarded by the client's lock
	timers    []*time.Timer // every timer, stopped at the end

	lastWrite atomic.Int64  // monotonic, since clockBase
	deadline  time.Duration // the sink's write deadline, since clockBase
}

// clockBase is the origin of the monotonic times writers keep.
var clockBase = time.Now()

func since() time.Duration { return time.Since(clockBase) }

// write writes a batch of frames to the sink under the route's write
// deadline, and returns the bytes written.
func (o *writer) write(batch [][]byte) (int64, error) {
	now := since()
	if err := o.extendDeadline(now); err != nil {
		return 0, err
	}
	n, err := o.sink.write(batch)
	if err == nil {
		// When the write began: one clock reading per write, and the
		// keepalive period is counted from there.
		o.lastWrite.Store(int64(now))
	}
	return n, err
}

// extendDeadline gives a write beginning at now write_timeout. Moving a
// deadline costs a timer update in the runtime, so a busy client's moves
// only once an eighth of it is used up: each write gets at least seven
// eighths.
func (o *writer) extendDeadline(now time.Duration) error {
	if o.hurry.Err() != nil {
		return o.sink.setDeadline(time.Now())
	}
	if o.deadline-now >= o.rt.WriteTimeout-o.rt.WriteTimeout/8 {
		return nil
	}
	o.deadline = now + o.rt.WriteTimeout
	if err := o.sink.setDeadline(clockBase.Add(o.deadline)); err != nil {
		return err
	}
	if o.hurry.Err() != nil {
		// Checked after setting, so that a concurrent hurry is not undone.
		return o.sink.setDeadline(time.Now())
	}
	return nil
}

// keptQueue is the largest queue capacity a client keeps for a next
// burst once written: a steady stream then allocates no queue, and an
// idle client holds a few words.
const keptQueue = 64

// kick starts a writer unless one runs; called with c.mu held.
func (c *Client) kick() {
	if c.out != nil && !c.writing {
		c.writing = true
		go c.run()
	}
}

// yieldToWriters lets writers run before a delivering goroutine goes on
// when a client's queue is half full. A new writer waits for its
// creator's processor, and a subscription handing over a burst of
// messages would otherwise fill the queue before the writer ran. It
// yields only then: writers that lag a little write more frames at once,
// which is cheaper than one write per event.
func yieldToWriters(pressed bool) {
	if pressed {
		runtime.Gosched()
	}
}

// run is the writer: it writes what is queued, in as few writes as it
// can, until the queue is empty; it runs the end once the client is lost
// or its last frame is out.
func (c *Client) run() {
	o := c.out
	c.mu.Lock()
	for {
		if c.stopped() {
			c.writing = false
			c.mu.Unlock()
			c.end()
			return
		}
		backlog := c.backlog
		batch, all := c.takeBatch()
		if c.missed.n > 0 && backlog <= len(batch) {
			// In place of what was dropped: after the replay, before the
			// live events that are left.
			batch = slices.Insert(batch, backlog, c.missed.frame())
			c.out.m.dropped.Add(float64(c.missed.n))
			c.missed = missed{}
		}
		events := len(batch)
		if c.keepaliveDue {
			c.keepaliveDue = false
			batch = append(batch, keepaliveLine)
		}
		last := all && c.moveTo(draining)
		if last {
			batch = append(batch, c.final)
			events += c.finalEvents
		}
		if len(batch) == 0 {
			c.spare = batch
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.inWrite = true
		c.mu.Unlock()

		n, err := o.write(batch)
		o.m.bytes.Add(float64(n))
		if err == nil {
			o.m.delivered.Add(float64(events))
		}
		c.mu.Lock()
		c.inWrite = false
		if cap(batch) <= keptQueue {
			clear(batch)
			c.spare = batch[:0]
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded) && o.hurry.Err() == nil:
			if c.lose("slow client dropped: a write timed out") {
				c.slow = slowWriteTimeout
			}
		case err != nil:
			c.lose("client lost: " + err.Error())
		case last:
			c.moveTo(closed)
		}
	}
}

// What a client's connection may hold that TCP has not sent yet (on
// Linux; see limitUnsent): little where the route's slow_consumer policy
// drops or replaces queued events, so that it acts on the queue; on
// routes that disconnect a slow client, enough to take a burst, but not
// the megabytes the kernel would give a client that reads slowly before
// it is found out.
const (
	unsentLimit           = 16 << 10
	unsentLimitDisconnect = 64 << 10
)

// batchLimit is about the most a writer of a client whose policy drops or
// replaces events takes at once (see takeBatch): such a client stays as
// long as it reads that much within write_timeout.
const batchLimit = unsentLimit / 2

// takeBatch takes what the writer writes next, with c.mu held, and
// reports whether it is all that was queued: the whole queue, or, for a
// client whose slow_consumer policy drops or replaces queued events and
// that is not being ended, the oldest frames up to about batchLimit
// bytes. What stays queued can still
// be dropped or replaced, where frames taken cannot; and each write waits
// for little more than that much to drain, so write_timeout ends a client
// that stopped reading, not one that reads slowly.
func (c *Client) takeBatch() (batch [][]byte, all bool) {
	k := len(c.queue)
	// A client being ended takes what is queued at once: taken in parts,
	// a queue that a slow reader keeps full would never let the end
	// come (write_timeout bounds that last write).
	if c.dropOldest && c.state != closing {
		k = batchEnd(c.queue, batchLimit)
	}
	if k == len(c.queue) {
		batch = c.queue
		c.queue, c.spare, c.backlog, c.keys = c.spare, nil, 0, c.keys[:0]
		return batch, true
	}
	// Its own capacity: what is inserted into the batch must not run
	// over the frames left.
	batch = c.queue[:k:k]
	c.queue, c.spare = append(c.spare, c.queue[k:]...), nil
	if k <= c.backlog {
		c.backlog -= k
	} else {
		if c.conflate {
			c.keys = c.keys[:copy(c.keys, c.keys[k-c.backlog:])]
		}
		c.backlog = 0
	}
	return batch, false
}

// batchEnd is how many of frames, at least one, fit in limit bytes.
func batchEnd(frames [][]byte, limit int) int {
	size := 0
	for i, f := range frames {
		size += len(f)
		if size > limit && i > 0 {
			return i
		}
	}
	return len(frames)
}

// keepalive is the keepalive timer's call: a comment goes out only after
// a keepalive period without any write, counted from the last one.
func (c *Client) keepalive() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.takesFrames() {
		return // ending: re-arming would outlive the end's Stop
	}
	o := c.out
	period := o.rt.Keepalive
	if idle := since() - time.Duration(o.lastWrite.Load()); idle < period {
		o.keepalive.Reset(period - idle)
		return
	}
	c.keepaliveDue = true
	c.kick()
	o.keepalive.Reset(period)
}
