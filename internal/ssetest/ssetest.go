// Package ssetest opens event streams for tests and reads them with a
// third-party parser (github.com/tmaxmax/go-sse), so that what ssegate
// writes is checked by code it does not share, and keeps the raw bytes
// for checks on the wire.
package ssetest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	gosse "github.com/tmaxmax/go-sse"
)

// Stream is an open event stream.
type Stream struct {
	// Resp is the response that opened the stream; its Body is read here.
	Resp *http.Response
	// Wait bounds how long Next and the other waits wait; 10 s from Open.
	Wait time.Duration

	t      testing.TB
	cancel context.CancelFunc
	events chan gosse.Event
	done   chan struct{} // closed at the end of the stream
	err    error         // why it ended, set before done is closed
	mu     sync.Mutex
	raw    bytes.Buffer
}

// Open sends GET url with header (which may be nil) on hc, as EventSource
// does, and fails the test unless the answer is a 200 event stream. The
// stream is closed at the end of the test.
func Open(t testing.TB, hc *http.Client, url string, header http.Header) *Stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		cancel()
		resp.Body.Close()
		t.Fatalf("GET %s: %s, Content-Type %q", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	s := &Stream{Resp: resp, Wait: 10 * time.Second, t: t, cancel: cancel, events: make(chan gosse.Event, 10000), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		cfg := &gosse.ReadConfig{MaxEventSize: 1 << 20}
		for ev, err := range gosse.Read(io.TeeReader(resp.Body, lockedWriter{s}), cfg) {
			if err != nil {
				s.err = err
				return
			}
			s.events <- ev
		}
	}()
	t.Cleanup(s.Close)
	return s
}

type lockedWriter struct{ s *Stream }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.raw.Write(p)
}

// Close ends the stream from the client's side.
func (s *Stream) Close() {
	s.cancel()
	_ = s.Resp.Body.Close()
}

// Events are the events parsed so far and to come; it is closed only by
// Drain.
func (s *Stream) Events() <-chan gosse.Event { return s.events }

// Done is closed when the stream has ended, its events still to be read
// from Events.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Next returns the next event, failing the test if the stream ends or
// none comes within Wait.
func (s *Stream) Next() gosse.Event {
	s.t.Helper()
	return s.NextWithin(s.Wait)
}

// NextWithin is Next, for an event that may take up to d to come.
func (s *Stream) NextWithin(d time.Duration) gosse.Event {
	s.t.Helper()
	select {
	case ev := <-s.events:
		return ev
	case <-s.done:
		select {
		case ev := <-s.events:
			return ev
		default:
		}
		s.t.Fatalf("stream ended (%v); raw so far:\n%q", s.err, s.tail())
	case <-time.After(d):
		s.t.Fatalf("no event within %v; raw so far:\n%q", d, s.tail())
	}
	return gosse.Event{}
}

// ExpectData reads events and checks their data, in order.
func (s *Stream) ExpectData(want ...string) []gosse.Event {
	s.t.Helper()
	var got []gosse.Event
	for _, w := range want {
		ev := s.Next()
		if ev.Data != w {
			s.t.Fatalf("event data = %q, want %q (event %+v)", ev.Data, w, ev)
		}
		got = append(got, ev)
	}
	return got
}

// ExpectQuiet checks that no event is waiting or arrives within d.
func (s *Stream) ExpectQuiet(d time.Duration) {
	s.t.Helper()
	select {
	case ev := <-s.events:
		s.t.Fatalf("unexpected event %+v", ev)
	case <-time.After(d):
	}
}

// Raw returns the bytes read so far.
func (s *Stream) Raw() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw.String()
}

// tail is the end of the raw stream, for failure messages.
func (s *Stream) tail() string {
	r := s.Raw()
	if len(r) > 400 {
		r = "..." + r[len(r)-400:]
	}
	return r
}

// WaitRaw waits until the raw stream contains want.
func (s *Stream) WaitRaw(want string) {
	s.t.Helper()
	deadline := time.Now().Add(s.Wait)
	for !strings.Contains(s.Raw(), want) {
		if time.Now().After(deadline) {
			s.t.Fatalf("raw stream never contained %q:\n%q", want, s.tail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitEnd waits for the server to end the stream.
func (s *Stream) WaitEnd() {
	s.t.Helper()
	select {
	case <-s.done:
	case <-time.After(s.Wait):
		s.t.Fatalf("stream did not end; raw so far:\n%q", s.tail())
	}
}

// Drain yields the events the stream still has, once it has ended.
func (s *Stream) Drain() <-chan gosse.Event {
	s.t.Helper()
	s.WaitEnd()
	close(s.events)
	return s.events
}
