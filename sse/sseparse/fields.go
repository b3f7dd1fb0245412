package sseparse

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// field processes one non-blank line.
func (r *Reader) field(line []byte) error {
	if line[0] == ':' {
		if r.onComment != nil {
			r.onComment(string(line[1:]))
		}
		return nil
	}
	if !utf8.Valid(line) {
		r.fixed = appendUTF8(r.fixed[:0], line)
		line = r.fixed
	}
	name, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) {
	case "event":
		r.eventType = append(r.eventType[:0], value...)
	case "data":
		// The LFs already buffered count, the one about to be added does
		// not: it is removed at dispatch, so Data never exceeds the limit.
		if len(r.data)+len(value) > r.max {
			return fmt.Errorf("sseparse: event data longer than %d bytes: %w", r.max, ErrTooLong)
		}
		r.data = append(r.data, value...)
		r.data = append(r.data, '\n')
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			r.idBuffer = string(value)
		}
	case "retry":
		r.setRetry(value)
	}
	return nil
}

// setRetry applies a retry field. A value of digits too large for a
// time.Duration is ignored, as browsers ignore one that overflows their
// integer parse.
func (r *Reader) setRetry(value []byte) {
	if len(value) == 0 {
		return
	}
	for _, c := range value {
		if c < '0' || c > '9' {
			return
		}
	}
	ms, err := strconv.ParseInt(string(value), 10, 64)
	if err != nil || ms > math.MaxInt64/int64(time.Millisecond) {
		return
	}
	r.retry, r.retrySet = time.Duration(ms)*time.Millisecond, true
}

// dispatch handles a blank line, returning the event it fires, if any.
func (r *Reader) dispatch() (MessageEvent, bool) {
	r.lastID = r.idBuffer
	if len(r.data) == 0 {
		r.eventType = r.eventType[:0]
		return MessageEvent{}, false
	}
	ev := MessageEvent{Type: "message", Data: string(r.data[:len(r.data)-1]), LastEventID: r.lastID}
	if len(r.eventType) > 0 {
		ev.Type = string(r.eventType)
	}
	r.data, r.eventType = r.data[:0], r.eventType[:0]
	return ev, true
}
