package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/proxy"
)

// position asks for the position of the stream at path, with header's
// credentials.
func position(t *testing.T, base, path string, header http.Header) proxy.Position {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var pos proxy.Position
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &pos) != nil || pos.LastEventID == "" {
		t.Fatalf("position of %s: %d %q", path, resp.StatusCode, body)
	}
	return pos
}

// deliver posts a JSON delivery to a webhook and returns the id its
// answer gives the event ("" when it has none).
func deliver(t *testing.T, hook, body string) string {
	t.Helper()
	code, answer := post(t, hook, "application/json", nil, body)
	var a struct {
		Status string `json:"status"`
		ID     string `json:"id"`
	}
	if code != http.StatusAccepted || json.Unmarshal([]byte(answer), &a) != nil || a.Status != "accepted" {
		t.Fatalf("delivery %q: %d %q", body, code, answer)
	}
	return a.ID
}

// With the history in JetStream, a webhook answers with the event's id
// and a stream's position holds on every replica: a client that opens
// from it gets exactly what was published after it was read.
func TestPositionWithJetStream(t *testing.T) {
	t.Parallel()
	ns := loopback.JetStream(t, t.TempDir())
	const cfg = `
route "/orders/{shop}" {
  history { store = "jetstream" }
  source "webhook" {
    path    = "/hooks/orders"
    subject = "orders.${msg.json.shop}"
    data    = msg.json.text
    verify "none" {}
  }
}`
	a, b := startOn(t, ns, cfg), startOn(t, ns, cfg)
	hook := a.ts.URL + "/hooks/orders"
	first := deliver(t, hook, `{"shop": "s1", "text": "before"}`)
	pos := position(t, a.ts.URL, "/orders/s1", nil)
	if pos.LastEventID != first || pos.Store != "jetstream" {
		t.Fatalf("position %+v after the event with id %s", pos, first)
	}
	deliver(t, hook, `{"shop": "s2", "text": "another shop"}`)
	between := deliver(t, hook, `{"shop": "s1", "text": "between"}`)
	for _, h := range []*harness{a, b} {
		c := h.open("/orders/s1?lastEventId="+pos.LastEventID, nil)
		if ev := c.Next(); ev.Data != "between" || ev.LastEventID != between {
			t.Fatalf("got %+v, want the event published after the position, id %s", ev, between)
		}
	}
}

// With a memory history, reading the position opens the stream here and
// holds it for the route's linger: a client that comes with it gets
// exactly what came since, and ids the webhook answers are the
// deliveries' own.
func TestPositionInMemory(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/rooms/{room}" {
  source "webhook" {
    path    = "/hooks/rooms"
    subject = "rooms.${msg.json.room}"
    id      = try(msg.json.id, null)
    data    = msg.json.text
    verify "none" {}
  }
}`)
	pos := position(t, h.ts.URL, "/rooms/r1", nil)
	if pos.Store != "memory" || h.srv.OpenStreams() != 1 {
		t.Fatalf("position %+v with %d streams open, want the stream opened for it", pos, h.srv.OpenStreams())
	}
	hook := h.ts.URL + "/hooks/rooms"
	if id := deliver(t, hook, `{"room": "r1", "text": "between"}`); id != "" {
		t.Errorf("the webhook answered id %q for an event whose id the stream assigns", id)
	}
	if id := deliver(t, hook, `{"room": "r1", "text": "named", "id": "e-7"}`); id != "e-7" {
		t.Errorf("a delivery with an id of its own was answered with id %q, want e-7", id)
	}
	c := h.open("/rooms/r1?lastEventId="+url.QueryEscape(pos.LastEventID), nil)
	c.ExpectData("between", "named")
	if again := position(t, h.ts.URL, "/rooms/r1", nil); again.LastEventID != "e-7" {
		t.Errorf("position %+v, want the last event's id e-7", again)
	}
}

// A position request passes the route's auth and allow as a stream
// request does, and never opens a stream for a client refused.
func TestPositionNeedsTheStreamsAuth(t *testing.T) {
	t.Parallel()
	h := start(t, perUserNotes)
	req, _ := http.NewRequest(http.MethodGet, h.ts.URL+"/me", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || h.srv.OpenStreams() != 0 {
		t.Fatalf("position without credentials: %d, %d streams open", resp.StatusCode, h.srv.OpenStreams())
	}
	position(t, h.ts.URL, "/me", bearerWith(t, map[string]any{"sub": "ada"}))
}

// The recipe of docs/control.md, end to end: a backend answers a page
// load with its state and the stream's position, read first; the page
// opens the stream from the position and skips the events its state
// already has. Events published all along reach the page once each,
// whichever side of the state they fell on.
func TestPageLoadWithNoGap(t *testing.T) {
	t.Parallel()
	for _, store := range []string{"memory", "jetstream"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			h := startOn(t, loopback.JetStream(t, t.TempDir()), `
route "/board" {
  history { store = "`+store+`" }
  source "nats" { subject = "board" }
}`)
			// The backend's state: the versions it applied, under its lock.
			var mu sync.Mutex
			applied := 0
			change := func(v int) { // the backend changes its state, then publishes
				mu.Lock()
				applied = v
				mu.Unlock()
				h.publish("board", fmt.Sprint(v))
			}
			backend := func() (state int, pos string) {
				// The position first: what is published after it is
				// replayed, even what the state then has.
				pos = position(t, h.ts.URL, "/board", nil).LastEventID
				change(applied + 1) // a change between the two reads
				mu.Lock()
				defer mu.Unlock()
				return applied, pos
			}
			change(1)
			state, pos := backend()
			change(state + 1)
			page := h.open("/board?lastEventId="+url.QueryEscape(pos), nil)
			seen := state
			for seen < state+1 {
				ev := page.Next()
				var v int
				if _, err := fmt.Sscan(ev.Data, &v); err != nil {
					t.Fatalf("event %+v", ev)
				}
				switch {
				case v <= state:
					// In the state already: the page skips it.
				case v != seen+1:
					t.Fatalf("version %d after %d: a gap", v, seen)
				default:
					seen = v
				}
			}
		})
	}
}

// A backend reads a position through the library or over NATS, with the
// user's claims standing for their credentials, and publishes through
// the library: the id Publish returns is the one the user's stream
// gives the event.
func TestPositionAndPublishForABackend(t *testing.T) {
	t.Parallel()
	h := startOn(t, loopback.JetStream(t, t.TempDir()), `
auth "jwt" "users" {
  hmac_secret = "`+jwtSecret+`"
}
route "/inbox" {
  auth = "users"
  history { store = "jetstream" }
  source "nats" { subject = "inbox.${auth.claims.sub}" }
}
route "/news" {
  source "nats" { subject = "news" }
}`)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ada := proxy.StreamRef{Route: "/inbox", Claims: map[string]any{"sub": "ada"}}
	pos, err := h.srv.Position(ctx, ada)
	if err != nil || pos.Store != "jetstream" {
		t.Fatalf("Position: %+v, %v", pos, err)
	}
	id, err := h.srv.Publish(ctx, "inbox.ada", []byte("hello"))
	if err != nil || id == "" {
		t.Fatalf("Publish: %q, %v; want the event's sequence", id, err)
	}
	c := h.open("/inbox?lastEventId="+pos.LastEventID, bearerWith(t, map[string]any{"sub": "ada"}))
	if ev := c.Next(); ev.Data != "hello" || ev.LastEventID != id {
		t.Fatalf("got %+v, want hello with id %s", ev, id)
	}

	nc := connect(t, h.ns)
	ask := func(request string) map[string]string {
		t.Helper()
		m, err := nc.Request("ssegate.control.position", []byte(request), wait)
		if err != nil {
			t.Fatal(err)
		}
		var answer map[string]string
		if err := json.Unmarshal(m.Data, &answer); err != nil {
			t.Fatalf("answer %q: %v", m.Data, err)
		}
		return answer
	}
	if a := ask(`{"route": "/inbox", "claims": {"sub": "ada"}}`); a["last_event_id"] != id {
		t.Errorf("position over NATS: %v, want %s", a, id)
	}
	for _, bad := range []string{`{"route": "/nowhere"}`, `{"route": "/inbox"}`, `{"route": "/inbox", "claim": {}}`, `not json`} {
		if a := ask(bad); a["error"] == "" {
			t.Errorf("position of %s: %v, want an error", bad, a)
		}
	}

	if id, err := h.srv.Publish(ctx, "news", []byte("n")); err != nil || id != "" {
		t.Errorf("Publish to a memory route: %q, %v; want no id", id, err)
	}
	for _, subject := range []string{"ssegate.control.revoke", "news.*", ""} {
		if _, err := h.srv.Publish(ctx, subject, nil); err == nil {
			t.Errorf("Publish to %q was accepted", subject)
		}
	}
}
