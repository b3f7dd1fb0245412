// Package sseparse reads a Server-Sent Events stream exactly as the WHATWG
// HTML standard's event-stream interpretation rules parse it.
//
// ssegate re-emits what an upstream sends, so it must see the same events,
// ids and retry times a browser pointed at that upstream would see; any
// leniency or strictness of our own would change what subscribers get.
package sseparse

import (
	"bufio"
	"errors"
	"io"
	"time"
)

// MessageEvent is one dispatched event, as a browser's EventSource hands
// it to the page (its MessageEvent): unlike an sse.Event being written,
// its type is never empty and its id is the stream's last one.
type MessageEvent struct {
	Type        string // the event field, "message" when none was given
	Data        string // data lines joined with "\n", final "\n" removed
	LastEventID string // the last event ID buffer when the event was dispatched
}

// ErrTooLong reports a line or an event's data bigger than the Reader's
// limit. The rest of the stream cannot be trusted: skipping the excess would
// splice the tail of one event onto another, so the Reader stops for good
// and the caller should drop the connection.
var ErrTooLong = errors.New("sseparse: event too long")

const (
	defaultMaxEvent = 1 << 20
	// readBufferSize is large enough that a fast upstream is drained with
	// few read calls, yet small beside the per-event limit.
	readBufferSize = 32 << 10
)

// Reader parses one event stream. It is not safe for concurrent use.
type Reader struct {
	br  *bufio.Reader
	max int

	line    []byte // a line split over reads is gathered here
	fixed   []byte // a line with invalid UTF-8, after U+FFFD repair
	atStart bool   // no line read yet, so a BOM may still be skipped
	afterCR bool   // last line ended in CR: a LF next completes its CRLF
	lfFree  int    // this many buffered bytes are known to hold no LF

	data      []byte
	eventType []byte
	idBuffer  string // the standard's last event ID buffer
	lastID    string // the standard's last event ID string
	retry     time.Duration
	retrySet  bool

	err error // sticky: after any error the stream is done

	onComment func(text string)
}

// NewReader returns a Reader over r. maxEvent bounds the bytes buffered for
// one event (line + data), so an upstream cannot make us buffer without
// limit; <= 0 means a default of 1 MiB.
func NewReader(r io.Reader, maxEvent int) *Reader {
	if maxEvent <= 0 {
		maxEvent = defaultMaxEvent
	}
	return &Reader{br: bufio.NewReaderSize(r, readBufferSize), max: maxEvent, atStart: true}
}

// Next returns the next dispatched event. At the end of the input it
// returns io.EOF (an event not terminated by a blank line is discarded, as
// the standard says); read errors are returned wrapped with context. Once
// Next has returned an error it returns the same error from then on.
func (r *Reader) Next() (MessageEvent, error) {
	for r.err == nil {
		var line []byte
		line, r.err = r.readLine()
		if r.err != nil {
			break
		}
		if len(line) == 0 {
			if ev, ok := r.dispatch(); ok {
				return ev, nil
			}
			continue
		}
		r.err = r.field(line)
	}
	return MessageEvent{}, r.err
}

// OnComment makes the Reader call f with the text of each comment line
// (after its colon) as it reads it, for callers that watch keepalives.
func (r *Reader) OnComment(f func(text string)) { r.onComment = f }

// LastEventID is what to send as Last-Event-ID on reconnect. It persists
// across events: an event without id keeps the previous one, and a block
// with an id but no data still changes it. It is the standard's last event
// ID string, which takes the id buffer's value only at a blank line, so an
// id in a block cut off by the end of the stream does not count: that
// block's event never arrived, and resuming after it would lose it.
func (r *Reader) LastEventID() string {
	return r.lastID
}

// Resume starts the Reader from a last event ID, as a client that
// reconnects keeps the one it had: an event without an id field then
// carries it, as it would have on the earlier connection.
func (r *Reader) Resume(id string) {
	r.idBuffer, r.lastID = id, id
}

// Retry returns the reconnection time last set by a valid retry field, and
// whether one was seen.
func (r *Reader) Retry() (time.Duration, bool) {
	return r.retry, r.retrySet
}
