package proxy

import (
	"encoding/json"
	"time"

	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/sse"
)

// endOfLifeRetry is the retry hint, before jitter, for a stream ended by
// max_stream_duration on a route that configures none.
const endOfLifeRetry = time.Second

var (
	authExpiredFrame = mustEncode(AuthExpiredEvent, `{"reason":"token expired"}`)
	keepaliveLine    = sse.AppendComment(nil, "keepalive")
	shutdownLine     = sse.AppendComment(nil, "ssegate is shutting down; reconnect")
)

func mustEncode(name, data string) []byte {
	e, err := sse.NewEvent(name, data)
	if err != nil {
		panic(err)
	}
	return e.Encode()
}

// reconnectFrame is the end of a stream its client should come back to at
// once: a retry hint of about d (rt's, if it sets one) and a comment.
func reconnectFrame(rt *config.Route, d time.Duration, why string) []byte {
	return sse.AppendComment(sse.AppendRetry(nil, jitter(retryOr(rt, d))), why)
}

// ResetEvent is the name of the event a resuming client gets when its
// Last-Event-ID is no longer (or never was) in the stream's history: events
// may have been missed, and the page should reload what it shows. Its id is
// the stream's latest (or, before the first event, one that stands for the
// stream's start), so the next resume continues from here.
const ResetEvent = "ssegate-reset"

// resetFrame is the ResetEvent for a client that sent lastID, with id to
// resume from next.
func resetFrame(lastID, id string) []byte {
	data, _ := json.Marshal(struct {
		LastEventID string `json:"last_event_id"`
	}{lastID})
	e, _ := sse.NewEvent(ResetEvent, string(data)) // JSON is valid UTF-8
	e, _ = e.WithID(id)                            // ids in history are valid, the origin is ASCII
	return e.Encode()
}
