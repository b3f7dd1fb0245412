package proxy

import (
	"bytes"
	"encoding/json"

	"github.com/ssegate/ssegate/sse"
)

// GapEvent is the event a client of a route with slow_consumer = "drop"
// gets in place of the events it fell too far behind to receive: its data
// names the first and last ids lost and how many, {"first":"...",
// "last":"...","missed":N}, so the page can fetch what it missed.
const GapEvent = "ssegate-gap"

// missed counts the events dropped from a slow client's queue since its
// writer last took it.
type missed struct {
	first, last string // their ids
	n           int
}

// add notes that frame was dropped.
func (m *missed) add(frame []byte) {
	id := frameID(frame)
	if m.n == 0 {
		m.first = id
	}
	m.last = id
	m.n++
}

// frame is the GapEvent for what was dropped. It has no id: the client's
// last id stays that of the last event it had, and the next one's follows.
func (m *missed) frame() []byte {
	data, _ := json.Marshal(struct {
		First  string `json:"first"`
		Last   string `json:"last"`
		Missed int    `json:"missed"`
	}{m.first, m.last, m.n})
	e, _ := sse.NewEvent(GapEvent, string(data)) // JSON is valid UTF-8
	return e.Encode()
}

// frameID is the id of an encoded event, which Event.AppendTo writes
// first, or "" when it has none.
func frameID(frame []byte) string {
	rest, ok := bytes.CutPrefix(frame, []byte("id: "))
	if !ok {
		return ""
	}
	id, _, _ := bytes.Cut(rest, []byte("\n"))
	return string(id)
}
