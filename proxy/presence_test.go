package proxy_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/proxy"
)

// rooms is a route whose clients are known: joins and leaves go to a
// subject of each room, which the route also reads, so each client sees
// the others come and go, whatever replica they are on.
const rooms = `
auth "jwt" "users" {
  hmac_secret = "` + jwtSecret + `"
}
route "/rooms/{room}" {
  auth = "users"
  presence {
    claims  = ["sub", "name"]
    subject = "presence.rooms.${path.room}"
  }
  source "nats" { subject = "rooms.${path.room}" }
  source "nats" {
    subject = "presence.rooms.${path.room}"
    event   = "presence"
  }
}
route "/lobby" {
  source "nats" { subject = "lobby" }
}`

// Who is on a stream, across two replicas: asked on the admin listener
// and through the library, announced on the room's subject, and seen in
// band by the room's own clients.
func TestPresenceAcrossReplicas(t *testing.T) {
	t.Parallel()
	ns := loopback.NATS(t, "")
	a, b := startOn(t, ns, rooms), startOn(t, ns, rooms)
	events := make(chan *nats.Msg, 16)
	if _, err := connect(t, ns).ChanSubscribe("presence.rooms.r1", events); err != nil {
		t.Fatal(err)
	}
	user := func(sub, name string) http.Header {
		return bearerWith(t, map[string]any{"sub": sub, "name": name, "email": sub + "@example.com"})
	}
	next := func() proxy.PresenceEvent {
		t.Helper()
		select {
		case m := <-events:
			var e proxy.PresenceEvent
			if err := json.Unmarshal(m.Data, &e); err != nil {
				t.Fatalf("presence event %q: %v", m.Data, err)
			}
			return e
		case <-time.After(wait):
			t.Fatal("no presence event")
		}
		return proxy.PresenceEvent{}
	}

	ada := a.open("/rooms/r1", user("ada", "Ada"))
	if e := next(); e.Event != "join" || e.Client["sub"] != "ada" || e.Client["name"] != "Ada" || e.Client["email"] != nil || e.Params["room"] != "r1" || e.Here != 1 {
		t.Fatalf("ada's join: %+v", e)
	}
	bob := b.open("/rooms/r1", user("bob", "Bob"))
	if e := next(); e.Event != "join" || e.Client["sub"] != "bob" {
		t.Fatalf("bob's join: %+v", e)
	}
	// In band: ada sees herself, then bob, who is on the other replica.
	for _, who := range []string{`"sub":"ada"`, `"sub":"bob"`} {
		if ev := ada.Next(); ev.Type != "presence" || !strings.Contains(ev.Data, who) || !strings.Contains(ev.Data, `"event":"join"`) {
			t.Fatalf("ada got %+v, want the join of %s", ev, who)
		}
	}

	admin := httptest.NewServer(a.srv.Admin())
	defer admin.Close()
	code, answer := post(t, admin.URL+"/presence?expect=2", "application/json", nil, `{"route": "/rooms/{room}", "params": {"room": "r1"}}`)
	var res proxy.PresenceResult
	if code != http.StatusOK || json.Unmarshal([]byte(answer), &res) != nil {
		t.Fatalf("presence: %d %q", code, answer)
	}
	var subs []string
	for _, c := range res.Clients {
		subs = append(subs, c.Client["sub"].(string))
	}
	slices.Sort(subs)
	if res.Count != 2 || len(res.Replicas) != 2 || strings.Join(subs, ",") != "ada,bob" {
		t.Fatalf("presence: %+v, want ada and bob on two replicas", res)
	}

	bob.Close()
	if e := next(); e.Event != "leave" || e.Client["sub"] != "bob" || e.Here != 0 {
		t.Fatalf("bob's leave: %+v", e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if res, err := b.srv.Presence(ctx, proxy.StreamRef{Route: "/rooms/{room}", Params: map[string]string{"room": "r1"}}, 2); err != nil || res.Count != 1 || res.Clients[0].Client["sub"] != "ada" {
		t.Fatalf("Presence after bob left: %+v, %v", res, err)
	}

	for _, body := range []string{`{"route": "/lobby"}`, `{"route": "/nowhere"}`, `{"route": "/rooms/{room}", "params": {"room": "a.b"}}`, `{"rout": "/rooms/{room}"}`} {
		if code, answer := post(t, admin.URL+"/presence", "application/json", nil, body); code != http.StatusBadRequest {
			t.Errorf("presence of %s: %d %q, want 400", body, code, answer)
		}
	}
}
