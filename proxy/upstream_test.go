package proxy_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// sseUpstream serves one scripted body per connection, then holds the
// last connection open; it records each connection's Last-Event-ID.
type sseUpstream struct {
	mu       sync.Mutex
	bodies   []string
	resumes  []string
	hold     chan struct{}
	noMore   bool // answer 204 once the script is done
	attempts int
}

func (u *sseUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	i := u.attempts
	u.attempts++
	u.resumes = append(u.resumes, r.Header.Get("Last-Event-ID"))
	u.mu.Unlock()
	if i >= len(u.bodies) {
		if u.noMore {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-u.hold:
		case <-r.Context().Done():
		}
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fmt.Fprint(w, u.bodies[i])
}

func (u *sseUpstream) connections() (int, []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.attempts, append([]string(nil), u.resumes...)
}

// An upstream that drops the connection in the middle of an event is
// resumed with the id of the last whole event: nothing is lost, nothing
// repeated.
func TestStreamResumesUpstreamAfterCut(t *testing.T) {
	t.Parallel()
	up := &sseUpstream{hold: make(chan struct{}), bodies: []string{
		"retry: 10\n\nid: 1\nevent: tick\ndata: one\n\nid: 2\nevent: tick\ndata: two\n\nid: 3\nevent: tick\ndata: thr",
		"id: 3\nevent: tick\ndata: three\n\n: a comment\nid: 4\ndata: four\n\n",
	}}
	ts := httptest.NewServer(up)
	defer ts.Close()
	defer close(up.hold)
	h := start(t, `route "/ticks" {
  source "stream" { url = "`+ts.URL+`" }
}`)
	c := h.open("/ticks", http.Header{"Last-Event-Id": {"never-seen"}})
	c.Next() // the reset: the stream's history holds what came before
	eventually(t, "the upstream's events", func() bool { n, _ := up.connections(); return n >= 3 })

	r := h.open("/ticks", http.Header{"Last-Event-Id": {"1"}})
	want := []struct{ id, typ, data string }{{"2", "tick", "two"}, {"3", "tick", "three"}, {"4", "", "four"}}
	for _, w := range want {
		ev := r.Next()
		if ev.LastEventID != w.id || ev.Data != w.data || (w.typ != "" && ev.Type != w.typ) {
			t.Fatalf("got %+v, want %+v", ev, w)
		}
	}
	r.ExpectQuiet(50 * time.Millisecond)
	_, resumes := up.connections()
	if resumes[0] != "" || resumes[1] != "2" || resumes[2] != "4" {
		t.Errorf("Last-Event-ID sent upstream on each connection: %q, want \"\", \"2\", \"4\"", resumes)
	}
}

// An upstream event without an id field carries the last one, across
// reconnects too, as in a browser: the resume point is not lost.
func TestStreamResumeIDSurvivesReconnect(t *testing.T) {
	t.Parallel()
	up := &sseUpstream{hold: make(chan struct{}), bodies: []string{
		"retry: 10\nid: 5\ndata: a\n\n",
		"data: b\n\n",
	}}
	ts := httptest.NewServer(up)
	defer ts.Close()
	defer close(up.hold)
	start(t, `route "/r" {
  source "stream" { url = "`+ts.URL+`" }
}`)
	eventually(t, "three connections", func() bool { n, _ := up.connections(); return n >= 3 })
	if _, resumes := up.connections(); resumes[1] != "5" || resumes[2] != "5" {
		t.Errorf("Last-Event-ID per connection %q, want \"\", \"5\", \"5\"", resumes)
	}
}

// An upstream that goes silent, not even sending comments, is taken for
// dead after idle_timeout and reconnected.
func TestStreamIdleUpstreamIsReconnected(t *testing.T) {
	t.Parallel()
	up := &sseUpstream{hold: make(chan struct{})}
	ts := httptest.NewServer(up)
	defer ts.Close()
	defer close(up.hold)
	start(t, `route "/quiet" {
  source "stream" {
    url          = "`+ts.URL+`"
    idle_timeout = "1s"
  }
}`)
	eventually(t, "a second connection", func() bool { n, _ := up.connections(); return n >= 2 })
}

// 204 is an SSE server's "do not reconnect".
func TestStreamStopsOn204(t *testing.T) {
	t.Parallel()
	up := &sseUpstream{noMore: true, bodies: []string{"data: only\n\n"}}
	ts := httptest.NewServer(up)
	defer ts.Close()
	h := start(t, `route "/once" {
  source "stream" { url = "`+ts.URL+`" }
}`)
	admin := httptest.NewServer(h.srv.Admin())
	defer admin.Close()
	// Stopped is final: the source's runner has returned.
	eventually(t, "the source to stop", func() bool {
		_, r := readyz(t, admin, nil)
		return len(r.Sources) == 1 && r.Sources[0].State == "stopped"
	})
	if n, _ := up.connections(); n != 2 {
		t.Errorf("%d connections after the upstream's 204, want 2", n)
	}
}

func TestStreamNDJSON(t *testing.T) {
	t.Parallel()
	send, hold := make(chan struct{}), make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "application/x-ndjson" {
			http.Error(w, "want ndjson", http.StatusNotAcceptable)
			return
		}
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-send:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "{\"n\":1}\n\n{\"n\":2}\r\n{\"n\":3, \"cut\": tr")
		w.(http.Flusher).Flush()
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	}))
	defer ts.Close()
	defer close(hold)
	h := start(t, `route "/nd" {
  source "stream" {
    url    = "`+ts.URL+`"
    format = "ndjson"
    data   = "n=${msg.json.n}"
  }
}`)
	c := h.open("/nd", nil)
	close(send)
	c.ExpectData("n=1", "n=2")
	c.ExpectQuiet(50 * time.Millisecond)
}

// symbolFeeds is an SSE upstream with one feed per symbol, at /s/SYM: a
// test sends a feed's events and counts its connections.
type symbolFeeds struct {
	mu    sync.Mutex
	feeds map[string]chan string
	conns map[string]int
}

func (f *symbolFeeds) feed(sym string) chan string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.feeds[sym] == nil {
		f.feeds[sym] = make(chan string, 8)
	}
	return f.feeds[sym]
}

func (f *symbolFeeds) connections(sym string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns[sym]
}

func (f *symbolFeeds) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sym := strings.TrimPrefix(r.URL.Path, "/s/")
	ch := f.feed(sym)
	f.mu.Lock()
	f.conns[sym]++
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	for {
		select {
		case data := <-ch:
			fmt.Fprintf(w, "data: %s\n\n", data)
			w.(http.Flusher).Flush()
		case <-r.Context().Done():
			return
		}
	}
}

// An upstream stream that reads topic is connected once per topic,
// however many streams follow it, and its events reach each once.
func TestStreamPerTopicSharedByStreams(t *testing.T) {
	t.Parallel()
	up := &symbolFeeds{feeds: map[string]chan string{}, conns: map[string]int{}}
	ts := httptest.NewServer(up)
	t.Cleanup(ts.Close) // after the proxy's, which ends the connections
	h := start(t, `
route "/ticks" {
  topics {}
  source "stream" { url = "`+ts.URL+`/s/${topic.name}" }
}`)
	ab := h.open("/ticks"+topicsOf("A", "B"), nil)
	bc := h.open("/ticks"+topicsOf("B", "C"), nil)
	eventually(t, "a connection for each of A, B and C", func() bool {
		return up.connections("A") == 1 && up.connections("B") == 1 && up.connections("C") == 1
	})
	expect := func(c *client, name, data string) {
		t.Helper()
		if ev := c.Next(); ev.Type != name || ev.Data != data {
			t.Fatalf("got %s %q, want %s %q", ev.Type, ev.Data, name, data)
		}
	}
	up.feed("B") <- "b1"
	expect(ab, "B", "b1")
	expect(bc, "B", "b1")
	up.feed("A") <- "a1"
	expect(ab, "A", "a1") // not a second b1
	up.feed("C") <- "c1"
	expect(bc, "C", "c1")
	if n := up.connections("B"); n != 1 {
		t.Errorf("B's upstream connected %d times, want once", n)
	}
}
