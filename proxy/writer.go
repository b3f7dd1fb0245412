package proxy

import (
	"context"
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
