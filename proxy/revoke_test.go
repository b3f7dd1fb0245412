package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/proxy"
	"github.com/ssegate/ssegate/proxy/config"
)

// revoke posts a revocation to an admin listener and returns the answer.
func revoke(t *testing.T, admin *httptest.Server, query, body string) (int, proxy.RevokeResult) {
	t.Helper()
	code, answer := post(t, admin.URL+"/revoke"+query, "application/json", nil, body)
	var res proxy.RevokeResult
	if code == http.StatusOK {
		if err := json.Unmarshal([]byte(answer), &res); err != nil {
			t.Fatalf("answer %q: %v", answer, err)
		}
	}
	return code, res
}

// expectRevoked checks that c got the revoked event with reason, then a
// retry hint, and that its stream ended.
func expectRevoked(t *testing.T, c *client, reason string) {
	t.Helper()
	ev := c.Next()
	if ev.Type != proxy.RevokedEvent || ev.Data != `{"reason":"`+reason+`"}` {
		t.Fatalf("got %s %q, want %s with reason %q", ev.Type, ev.Data, proxy.RevokedEvent, reason)
	}
	c.WaitEnd()
	_, tail, _ := strings.Cut(c.Raw(), ev.Data+"\n\n")
	expectRetryHint(t, tail, time.Second)
}

// A user logs out: their streams end on every replica of a 3-node
// cluster at once, their reconnects are refused while the auth service
// says no, and another user on the same stream is untouched.
func TestRevokeByClaimAcrossACluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a 3-node NATS cluster")
	}
	var mu sync.Mutex
	loggedOut := map[string]bool{}
	authsvc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		mu.Lock()
		out := loggedOut[user]
		mu.Unlock()
		switch {
		case !ok || user == "":
			w.WriteHeader(http.StatusUnauthorized)
		case out:
			w.WriteHeader(http.StatusForbidden)
		default:
			w.Header().Set("X-User-Id", user)
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer authsvc.Close()
	nodes := loopback.Cluster(t, 3)
	cfg := `
auth "forward" "gateway" {
  url          = "` + authsvc.URL + `"
  copy_headers = ["X-User-Id"]
}
route "/team/{team}" {
  auth = "gateway"
  source "nats" { subject = "team.${path.team}" }
}`
	a, b := startOn(t, nodes[0], cfg), startOn(t, nodes[1], cfg)
	bearer := func(user string) http.Header { return http.Header{"Authorization": {"Bearer " + user}} }
	aliceOnA, aliceOnB, bobOnA := a.open("/team/red", bearer("alice")), b.open("/team/red", bearer("alice")), a.open("/team/red", bearer("bob"))
	a.publish("team.red", "first")
	for _, c := range []*client{aliceOnA, aliceOnB, bobOnA} {
		c.ExpectData("first")
	}

	mu.Lock()
	loggedOut["alice"] = true
	mu.Unlock()
	admin := httptest.NewServer(a.srv.Admin())
	defer admin.Close()
	code, res := revoke(t, admin, "?expect=2", `{"claims": {"x_user_id": "alice"}, "reason": "logged out"}`)
	if code != http.StatusOK || res.Ended != 2 || len(res.Replicas) != 2 || res.Replicas[0].Ended != 1 || res.Replicas[1].Ended != 1 {
		t.Fatalf("revoke: %d %+v, want alice's stream ended on each of two replicas", code, res)
	}
	expectRevoked(t, aliceOnA, "logged out")
	expectRevoked(t, aliceOnB, "logged out")
	for _, h := range []*harness{a, b} {
		if resp := get(t, h.ts.URL+"/team/red", bearer("alice")); resp.StatusCode != http.StatusForbidden {
			t.Errorf("alice's reconnect: %d, want 403", resp.StatusCode)
		}
	}
	b.publish("team.red", "second")
	bobOnA.ExpectData("second")
}

// "Please reconnect", as for a deploy: every client of a route ends with
// a retry hint alone and resumes with no gap and no duplicate, since the
// streams keep their history.
func TestRevokeReconnectResumes(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/rooms/{room}" {
  history = 100
  source "nats" { subject = "rooms.${path.room}" }
}
route "/other" {
  source "nats" { subject = "other" }
}`)
	first, second := h.open("/rooms/a", nil), h.open("/rooms/a", nil)
	other := h.open("/other", nil)
	h.publish("rooms.a", "1")
	last := first.ExpectData("1")[0].LastEventID
	second.ExpectData("1")

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res, err := h.srv.Revoke(ctx, proxy.Revocation{Route: "/rooms/{room}", Reconnect: true, Reason: "deploy"}, 1)
	if err != nil || res.Ended != 2 {
		t.Fatalf("Revoke: %+v, %v; want 2 clients ended", res, err)
	}
	for _, c := range []*client{first, second} {
		c.WaitEnd()
		expectRetryHint(t, c.Raw()[strings.LastIndex(c.Raw(), "\n\n")+2:], 500*time.Millisecond)
		if strings.Contains(c.Raw(), proxy.RevokedEvent) {
			t.Errorf("a reconnect sent %s: %q", proxy.RevokedEvent, c.Raw())
		}
	}
	h.publish("rooms.a", "2")
	back := h.open("/rooms/a", http.Header{"Last-Event-Id": {last}})
	back.ExpectData("2")
	h.publish("rooms.a", "3")
	back.ExpectData("3")
	h.publish("other", "untouched")
	other.ExpectData("untouched")
	back.ExpectQuiet(50 * time.Millisecond)
}

// Revocations select by route, path values, topic and claims together,
// and what does not make sense is refused with the reason, on the admin
// listener and on the control subject, where it ends nothing.
func TestRevocationsSelectAndRefuse(t *testing.T) {
	t.Parallel()
	h := start(t, perUserNotes+`
route "/live" {
  topics {}
  source "nats" { subject = "stocks.${topic.name}" }
}`)
	ada := h.open("/me", bearerWith(t, map[string]any{"sub": "ada", "groups": []string{"ops", "dev"}}))
	bob := h.open("/me", bearerWith(t, map[string]any{"sub": "bob", "groups": []string{"dev"}}))
	ab := h.open("/live"+topicsOf("A", "B"), nil)
	bc := h.open("/live"+topicsOf("B", "C"), nil)
	admin := httptest.NewServer(h.srv.Admin())
	defer admin.Close()

	for _, body := range []string{
		`{}`,                                      // selects nothing: refused, not everything
		`{"claim": {"sub": "ada"}}`,               // misspelled
		`{"all": true, "route": "/me"}`,           // all alone
		`{"params": {"room": "a"}}`,               // without its route
		`{"claims": {"sub": "ada"}} {"all":true}`, // two values
		`[]`,
	} {
		if code, _ := revoke(t, admin, "", body); code != http.StatusBadRequest {
			t.Errorf("revoke %s: %d, want 400", body, code)
		}
	}
	if code, _ := revoke(t, admin, "", `{"all": true, "reason": "`+strings.Repeat("x", 70<<10)+`"}`); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a revocation of 70 KiB: %d, want 413", code)
	}
	if code, _ := revoke(t, admin, "?expect=-1", `{"all": true}`); code != http.StatusBadRequest {
		t.Errorf("expect=-1: %d, want 400", code)
	}
	// Published to the control subject by hand: refused, nothing ends.
	h.publish("ssegate.control.revoke", `{"all": true, "oops": 1}`)
	h.publish("ssegate.control.revoke", `not json`)

	// A list claim selects by one of its elements, with the route.
	if code, res := revoke(t, admin, "?expect=1", `{"route": "/me", "claims": {"groups": "ops"}}`); code != http.StatusOK || res.Ended != 1 {
		t.Fatalf("revoke group ops: %d %+v, want ada's stream", code, res)
	}
	ada.Next()
	ada.WaitEnd()
	// A topic selects the streams that carry it.
	if code, res := revoke(t, admin, "?expect=1", `{"route": "/live", "topic": "A"}`); code != http.StatusOK || res.Ended != 1 {
		t.Fatalf("revoke topic A: %d %+v, want the stream of {A,B}", code, res)
	}
	ab.Next()
	ab.WaitEnd()
	h.publish("user.bob.notes", "still here")
	bob.ExpectData("still here")
	h.publish("stocks.B", "b")
	if ev := bc.Next(); ev.Type != "B" || ev.Data != "b" {
		t.Fatalf("got %+v, want B b", ev)
	}
}

// A real EventSource (the eventsource npm package) of a user who logs
// out: it gets ssegate-revoked with the reason, comes back after the
// retry hint as every EventSource does, is refused by the auth service
// now, and gives up for good.
func TestEventSourceRevoked(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("testdata", "eventsource")
	node := nodeWith(t, dir, "eventsource")
	var loggedOut atomic.Bool
	authsvc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := url.Parse(r.Header.Get("X-Forwarded-Uri"))
		if err != nil || u.Query().Get("user") == "" || loggedOut.Load() {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.Header().Set("X-User-Id", u.Query().Get("user"))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer authsvc.Close()
	h := start(t, `
auth "forward" "gateway" {
  url          = "`+authsvc.URL+`"
  copy_headers = ["X-User-Id"]
}
route "/inbox" {
  auth  = "gateway"
  retry = "100ms"
  source "nats" { subject = "inbox.${auth.claims.x_user_id}" }
}`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd, out := startNode(ctx, t, node, dir, "revoked.mjs", h.ts.URL+"/inbox?user=alice")
	var lines []string
	for sc := bufio.NewScanner(out); sc.Scan(); {
		lines = append(lines, sc.Text())
		switch sc.Text() {
		case "open":
			h.publish("inbox.alice", "hello")
		case "event hello":
			loggedOut.Store(true)
			res, err := h.srv.Revoke(ctx, proxy.Revocation{Claims: map[string]string{"x_user_id": "alice"}, Reason: "logged out"}, 1)
			if err != nil || res.Ended != 1 {
				t.Errorf("Revoke: %+v, %v", res, err)
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("EventSource client: %v; it saw:\n%s", err, strings.Join(lines, "\n"))
	}
	if want := []string{"open", "event hello", "revoked logged out", "closed"}; !slices.Equal(lines, want) {
		t.Errorf("the client saw %q, want %q", lines, want)
	}
}

// What the config cannot tell ahead never reaches the control subject:
// a stream reading it through a subject of partial tokens is refused as it
// opens; a webhook publishing to it, accepted by a reload that moved
// control_subject (which only a restart applies), is refused per delivery;
// nothing is revoked.
func TestControlSubjectOutOfReach(t *testing.T) {
	t.Parallel()
	const calm = `
route "/calm" {
  source "nats" { subject = "calm" }
}`
	h := start(t, calm+`
route "/odd/{a}/{b}" {
  source "nats" { subject = "ssegate.c${path.a}.${path.b}" }
}`)
	c := h.open("/calm", nil)
	if resp := get(t, h.ts.URL+"/odd/ontrol/revoke", nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a stream on the control subject: %d, want 400", resp.StatusCode)
	}
	cfg, err := config.Parse([]byte(calm+`
nats {
  control_subject = "ops.control"
}
route "/hooked/{x}" {
  source "webhook" {
    path    = "/hooks/any"
    subject = "ssegate.control.${msg.json.x}"
    verify "none" {}
  }
}`), "test.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	code, answer := post(t, h.ts.URL+"/hooks/any", "application/json", nil, `{"x": "revoke", "all": true}`)
	if code != http.StatusUnprocessableEntity {
		t.Errorf("a delivery to the control subject: %d %q, want 422", code, answer)
	}
	h.publish("calm", "still here")
	c.ExpectData("still here")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := h.srv.Publish(ctx, "ssegate.control.revoke", []byte(`{"all": true}`)); err == nil {
		t.Error("Publish to the control subject was accepted")
	}
}
