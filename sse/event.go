// Package sse encodes Server-Sent Events frames exactly as the WHATWG HTML
// "server-sent events" section reads them.
//
// Invalid events cannot be built: the constructors refuse ids with CR, LF or
// NUL, names with CR or LF, and text that is not UTF-8, so the encoder never
// has to guess and a field can never inject another field.
package sse

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrInvalidField is wrapped by every error the constructors return.
var ErrInvalidField = errors.New("invalid SSE field")

// Event is one SSE event: an optional id, an optional name (the
// EventSource event type; empty means "message") and data.
// The zero value is an unnamed event with empty data and no id.
type Event struct {
	id    string
	hasID bool
	name  string
	data  string
}

// NewEvent returns an event with the given name and data. Data may hold any
// line ends (LF, CRLF, lone CR); each line becomes its own data line, which
// browsers join back with LF.
func NewEvent(name, data string) (Event, error) {
	if !utf8.ValidString(name) || strings.ContainsAny(name, "\r\n") {
		return Event{}, fmt.Errorf("event name %q: must be UTF-8 without CR or LF: %w", name, ErrInvalidField)
	}
	if !utf8.ValidString(data) {
		return Event{}, fmt.Errorf("event data: must be UTF-8: %w", ErrInvalidField)
	}
	return Event{name: name, data: data}, nil
}

// WithID returns a copy of e carrying id. An empty id is valid: it makes the
// browser forget its last event id, so it sends no Last-Event-ID on reconnect.
func (e Event) WithID(id string) (Event, error) {
	if !utf8.ValidString(id) || strings.ContainsAny(id, "\r\n\x00") {
		return Event{}, fmt.Errorf("event id %q: must be UTF-8 without CR, LF or NUL: %w", id, ErrInvalidField)
	}
	e.id, e.hasID = id, true
	return e, nil
}

// WithName returns a copy of e named name, refused as NewEvent refuses it.
func (e Event) WithName(name string) (Event, error) {
	n, err := NewEvent(name, "")
	if err != nil {
		return Event{}, err
	}
	e.name = n.name
	return e, nil
}

// ID returns the event's id and whether it has one.
func (e Event) ID() (string, bool) { return e.id, e.hasID }

// Name returns the event's name; empty means the default "message".
func (e Event) Name() string { return e.name }

// Data returns the event's data as it was given.
func (e Event) Data() string { return e.data }

// AppendTo appends the event's wire form, ending with the blank line that
// dispatches it, and returns the extended buffer.
func (e Event) AppendTo(dst []byte) []byte {
	if e.hasID {
		dst = appendField(dst, "id", e.id)
	}
	if e.name != "" {
		dst = appendField(dst, "event", e.name)
	}
	// An empty data buffer is never dispatched by a browser, so even empty
	// data is written as one (empty) data line.
	data := e.data
	for {
		i := lineEnd(data)
		if i < 0 {
			dst = appendField(dst, "data", data)
			break
		}
		dst = appendField(dst, "data", data[:i])
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	return append(dst, '\n')
}

// Encode returns the event's wire form in a buffer of its own.
func (e Event) Encode() []byte {
	// id, event and data fields plus one data line per line of data.
	n := len(e.id) + len(e.name) + len(e.data) + len("id: \nevent: \ndata: \n\n") + 7*strings.Count(e.data, "\n")
	return e.AppendTo(make([]byte, 0, n))
}

// AppendComment appends text as comment lines. Each line of text becomes
// its own comment line. No blank line follows: a comment is not an event,
// and a blank line after it would make some clients dispatch an empty one.
func AppendComment(dst []byte, text string) []byte {
	for {
		i := lineEnd(text)
		if i < 0 {
			return appendField(dst, "", text)
		}
		dst = appendField(dst, "", text[:i])
		if text[i] == '\r' && i+1 < len(text) && text[i+1] == '\n' {
			i++
		}
		text = text[i+1:]
	}
}

// AppendRetry appends a retry line asking the client to wait d before it
// reconnects. Like a comment, it is not followed by a blank line.
func AppendRetry(dst []byte, d time.Duration) []byte {
	dst = append(dst, "retry: "...)
	dst = strconv.AppendInt(dst, d.Milliseconds(), 10)
	return append(dst, '\n')
}

// lineEnd returns the index of the first CR or LF in s, or -1. It searches
// for CR only before the first LF, so splitting a text into lines stays
// linear, and both searches use the vectorized IndexByte.
func lineEnd(s string) int {
	lf := strings.IndexByte(s, '\n')
	end := lf
	if lf < 0 {
		end = len(s)
	}
	if cr := strings.IndexByte(s[:end], '\r'); cr >= 0 {
		return cr
	}
	return lf
}

// appendField writes "name: value\n"; the space is left out for an empty
// value, and parsers strip exactly one space, so a value that itself starts
// with a space survives.
func appendField(dst []byte, name, value string) []byte {
	dst = append(dst, name...)
	dst = append(dst, ':')
	if value != "" {
		dst = append(dst, ' ')
		dst = append(dst, value...)
	}
	return append(dst, '\n')
}
