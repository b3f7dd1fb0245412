package proxy_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/internal/ssetest"
	"github.com/ssegate/ssegate/proxy"
)

// tickers is a route whose clients pick the symbols they follow.
const tickers = `
route "/live" {
  topics {}
  source "nats" { subject = "stocks.${topic.name}" }
}`

// topicsOf is the query that asks for topics.
func topicsOf(topics ...string) string {
	q := url.Values{"topic": topics}
	return "?" + q.Encode()
}

// Several topics on one connection: each event comes named after its
// topic, topics not picked stay out, and the same set in another order is
// the same stream.
func TestTopicsOnOneStream(t *testing.T) {
	t.Parallel()
	h := start(t, tickers)
	c := h.open("/live"+topicsOf("MSFT", "AAPL"), nil)
	h.publish("stocks.AAPL", "a1")
	h.publish("stocks.GOOG", "g1")
	h.publish("stocks.MSFT", "m1")
	for _, want := range []struct{ name, data string }{{"AAPL", "a1"}, {"MSFT", "m1"}} {
		if ev := c.Next(); ev.Type != want.name || ev.Data != want.data {
			t.Fatalf("got %+v, want %s %q", ev, want.name, want.data)
		}
	}
	h.open("/live"+topicsOf("AAPL", "MSFT", "AAPL"), nil)
	if n := h.srv.RouteInfos()[0].Streams; n != 1 {
		t.Errorf("%d streams for one set of topics asked in two orders, want 1", n)
	}
	h.open("/live"+topicsOf("AAPL"), nil)
	if n := h.srv.RouteInfos()[0].Streams; n != 2 {
		t.Errorf("%d streams for two sets of topics, want 2", n)
	}
}

// Streams of overlapping sets of topics share the subscriptions
// underneath: one NATS subscription per subject, not per set.
func TestTopicsShareSubscriptions(t *testing.T) {
	t.Parallel()
	h := start(t, tickers)
	before := h.ns.NumSubscriptions()
	ab := h.open("/live"+topicsOf("A", "B"), nil)
	bc := h.open("/live"+topicsOf("B", "C"), nil)
	if n := h.ns.NumSubscriptions() - before; n != 3 {
		t.Errorf("%d subscriptions for {A,B} and {B,C}, want 3", n)
	}
	h.publish("stocks.B", "b1")
	for _, c := range []*client{ab, bc} {
		if ev := c.Next(); ev.Type != "B" || ev.Data != "b1" {
			t.Fatalf("got %+v, want B b1", ev)
		}
	}
}

// What a client asks for is checked before anything opens: no topic, too
// many, or one that would add a token or a wildcard to a subject is 400.
func TestTopicsRefusedAtTheEdge(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/live" {
  topics { max = 3 }
  source "nats" { subject = "stocks.${topic.name}" }
}`)
	for _, c := range []struct{ query, says string }{
		{"", "pick at least one topic"},
		{topicsOf("a", "b", "c", "d"), "at most 3"},
		{topicsOf("a.b"), "cannot stand in a NATS subject"},
		{topicsOf("*"), "cannot stand in a NATS subject"},
		{topicsOf(">"), "cannot stand in a NATS subject"},
		{topicsOf(""), "cannot stand in a NATS subject"},
	} {
		resp := get(t, h.ts.URL+"/live"+c.query, nil)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), c.says) {
			t.Errorf("%q: %d %q, want 400 saying %q", c.query, resp.StatusCode, body, c.says)
		}
	}
	if n := h.srv.RouteInfos()[0].Streams; n != 0 {
		t.Errorf("%d streams opened by refused requests", n)
	}
}

// allow is evaluated per topic with the token's claims in scope: a topic
// it refuses is answered 403 naming it, or, where the route drops
// refused topics, left out and named in the stream's first event.
func TestTopicsAllowedPerTopic(t *testing.T) {
	t.Parallel()
	h := start(t, `
auth "jwt" "users" {
  hmac_secret = "`+jwtSecret+`"
}
route "/live" {
  auth  = "users"
  allow = contains(auth.claims.topics, topic.name)
  topics {}
  source "nats" { subject = "stocks.${topic.name}" }
}
route "/lenient" {
  auth  = "users"
  allow = contains(auth.claims.topics, topic.name)
  topics { refused = "drop" }
  source "nats" { subject = "stocks.${topic.name}" }
}`)
	alice := bearerWith(t, jwt.MapClaims{"sub": "alice", "topics": []string{"AAPL", "MSFT"}})
	resp := get(t, h.ts.URL+"/live"+topicsOf("AAPL", "GOOG"), alice)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `topic "GOOG" is not allowed`) {
		t.Errorf("a refused topic: %d %q, want 403 naming GOOG", resp.StatusCode, body)
	}
	if resp := get(t, h.ts.URL+"/lenient"+topicsOf("GOOG"), alice); resp.StatusCode != http.StatusForbidden {
		t.Errorf("every topic refused: %d, want 403", resp.StatusCode)
	}
	c := h.open("/lenient"+topicsOf("AAPL", "GOOG"), alice)
	if ev := c.Next(); ev.Type != proxy.RefusedTopicsEvent || ev.Data != `{"topics":["GOOG"]}` {
		t.Fatalf("first event %+v, want %s naming GOOG", ev, proxy.RefusedTopicsEvent)
	}
	h.publish("stocks.GOOG", "g1")
	h.publish("stocks.AAPL", "a1")
	if ev := c.Next(); ev.Type != "AAPL" || ev.Data != "a1" {
		t.Fatalf("got %+v, want AAPL's event only", ev)
	}
}

// sawOneAndLeft has a client of {AAPL, MSFT} on /live see one event and
// leave, and returns the id it saw.
func sawOneAndLeft(h *harness) string {
	c := h.open("/live"+topicsOf("AAPL", "MSFT"), nil)
	h.publish("stocks.AAPL", "a1")
	seen := c.Next().LastEventID
	c.Close()
	return seen
}

// On a JetStream history one Last-Event-ID resumes every topic exactly:
// the ids are the stream's sequences, which order all its subjects. A
// client that comes back with one more topic gets what it missed on every
// topic it now asks for.
func TestTopicsResumeFromJetStream(t *testing.T) {
	t.Parallel()
	h := startOn(t, loopback.JetStream(t, t.TempDir()), `
route "/live" {
  topics {}
  history { store = "jetstream" }
  source "nats" { subject = "stocks.${topic.name}" }
}`)
	seen := sawOneAndLeft(h)
	h.publish("stocks.MSFT", "m2")
	h.publish("stocks.GOOG", "g2")
	h.publish("stocks.AAPL", "a2")
	back := h.open("/live"+topicsOf("AAPL", "MSFT"), http.Header{"Last-Event-Id": {seen}})
	for _, want := range []string{"MSFT m2", "AAPL a2"} {
		if ev := back.Next(); ev.Type+" "+ev.Data != want {
			t.Fatalf("resumed: got %+v, want %s", ev, want)
		}
	}
	more := h.open("/live"+topicsOf("AAPL", "GOOG", "MSFT"), http.Header{"Last-Event-Id": {seen}})
	for _, want := range []string{"MSFT m2", "GOOG g2", "AAPL a2"} {
		if ev := more.Next(); ev.Type+" "+ev.Data != want {
			t.Fatalf("resumed with a topic more: got %+v, want %s", ev, want)
		}
	}
}

// On a memory history each set of topics is a stream with a history of
// its own: the same set resumes exactly; another set is another stream,
// which cannot know the id, so the client is told to reload (never a
// silent gap).
func TestTopicsResumeFromMemory(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/live" {
  topics {}
  history = 100
  linger  = "1m"
  source "nats" { subject = "stocks.${topic.name}" }
}`)
	seen := sawOneAndLeft(h)
	h.publish("stocks.MSFT", "m2")
	back := h.open("/live"+topicsOf("MSFT", "AAPL"), http.Header{"Last-Event-Id": {seen}})
	if ev := back.Next(); ev.Type != "MSFT" || ev.Data != "m2" {
		t.Fatalf("resumed: got %+v, want MSFT m2", ev)
	}
	more := h.open("/live"+topicsOf("AAPL", "GOOG", "MSFT"), http.Header{"Last-Event-Id": {seen}})
	if ev := more.Next(); ev.Type != proxy.ResetEvent {
		t.Fatalf("resumed with a topic more: got %+v, want %s", ev, proxy.ResetEvent)
	}
}

// The seam between replay and live has no gap and no duplicate while
// events keep coming on both topics of the stream.
func TestTopicsResumeSeam(t *testing.T) {
	t.Parallel()
	for name, history := range map[string]string{"memory": "history = 5000", "jetstream": `history { store = "jetstream" }`} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := startOn(t, loopback.JetStream(t, t.TempDir()), `
route "/live" {
  topics {}
  `+history+`
  source "nats" { subject = "stocks.${topic.name}" }
}`)
			resumeSeam(t, h, "/live"+topicsOf("A", "B"), "stocks.A", "stocks.B")
		})
	}
}

// A source whose subject does not vary by topic is read once for the set
// and its events belong to no topic, however many topics are asked for;
// two topics that give a per-topic source one subject are refused, since
// its events could not say which topic they are.
func TestTopicsAndSharedSubjects(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/live" {
  topics {}
  source "nats" { subject = "stocks.${lower(topic.name)}" }
  source "nats" { subject = "market.status" }
}`)
	for _, set := range [][]string{{"A"}, {"A", "B"}} {
		c := h.open("/live"+topicsOf(set...), nil)
		h.publish("market.status", "open")
		if ev := c.Next(); ev.Type != "" || ev.Data != "open" {
			t.Errorf("%q: got %+v, want an unnamed status event", set, ev)
		}
	}
	resp := get(t, h.ts.URL+"/live"+topicsOf("A", "a"), nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `topics "A" and "a" make the same subject`) {
		t.Errorf("two topics, one subject: %d %q, want 400 naming them", resp.StatusCode, body)
	}
}

// A stream of several topics counts once per topic against max_streams,
// as each costs about what a stream of its own does.
func TestTopicsCountAgainstMaxStreams(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/live" {
  topics {}
  max_streams = 3
  source "nats" { subject = "stocks.${topic.name}" }
}`)
	h.open("/live"+topicsOf("A", "B"), nil)
	if resp := get(t, h.ts.URL+"/live"+topicsOf("C", "D"), nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("two topics more over max_streams 3: %d, want 503", resp.StatusCode)
	}
	h.open("/live"+topicsOf("C"), nil)
}

// Where refused topics are dropped, a topic allow cannot even evaluate (a
// value it cannot take) is dropped too, not the whole request.
func TestTopicsAllowThatCannotEvaluate(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/live" {
  topics { refused = "drop" }
  allow = tonumber(topic.name) > 0
  source "nats" { subject = "n.${topic.name}" }
}`)
	c := h.open("/live"+topicsOf("5", "abc"), nil)
	if ev := c.Next(); ev.Type != proxy.RefusedTopicsEvent || ev.Data != `{"topics":["abc"]}` {
		t.Fatalf("first event %+v, want abc named as refused", ev)
	}
}

// docs/topics.md's inbox: a user's notifications and their teams'
// channels on one stream, allow deciding which topics are theirs.
func TestTopicsUserAndTeams(t *testing.T) {
	t.Parallel()
	h := start(t, `
auth "jwt" "users" {
  hmac_secret = "`+jwtSecret+`"
}
route "/inbox" {
  auth  = "users"
  allow = topic.name == "user-${auth.claims.sub}" || contains([for t in auth.claims.teams : "team-${t}"], topic.name)
  topics {}
  source "nats" { subject = "notify.${topic.name}" }
}`)
	alice := bearerWith(t, jwt.MapClaims{"sub": "alice", "teams": []string{"42"}})
	c := h.open("/inbox"+topicsOf("user-alice", "team-42"), alice)
	h.publish("notify.user-bob", "not hers")
	h.publish("notify.team-42", "standup")
	h.publish("notify.user-alice", "hello")
	for _, want := range []string{"team-42 standup", "user-alice hello"} {
		if ev := c.Next(); ev.Type+" "+ev.Data != want {
			t.Fatalf("got %+v, want %s", ev, want)
		}
	}
	for _, other := range []string{"team-7", "user-bob"} {
		if resp := get(t, h.ts.URL+"/inbox"+topicsOf("user-alice", other), alice); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", other, resp.StatusCode)
		}
	}
}

// A topic route behaves the same over HTTP/2 and with a ticket: the
// ticket's claims decide the topics, and it is spent once.
func TestTopicsOverHTTP2WithATicket(t *testing.T) {
	t.Parallel()
	h := start(t, `
auth "jwt" "users" {
  hmac_secret = "`+jwtSecret+`"
  ticket {}
}
route "/live" {
  auth  = "users"
  allow = contains(auth.claims.topics, topic.name)
  topics {}
  source "nats" { subject = "stocks.${topic.name}" }
}`)
	ts := newTLSServer(t, h.srv)
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/ssegate/tickets/users", nil)
	req.Header = bearerWith(t, jwt.MapClaims{"sub": "ada", "topics": []string{"A", "B"}})
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Ticket string }
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if err != nil || resp.ProtoMajor != 2 || body.Ticket == "" {
		t.Fatalf("ticket over %s: %+v %v", resp.Proto, body, err)
	}
	c := ssetest.Open(t, ts.Client(), ts.URL+"/live"+topicsOf("A", "B")+"&ticket="+body.Ticket, nil)
	if c.Resp.ProtoMajor != 2 {
		t.Fatalf("stream over %s, want HTTP/2", c.Resp.Proto)
	}
	h.publish("stocks.B", "b1")
	h.publish("stocks.A", "a1")
	for _, want := range []string{"B b1", "A a1"} {
		if ev := c.Next(); ev.Type+" "+ev.Data != want {
			t.Fatalf("got %+v, want %s", ev, want)
		}
	}
	again, err := ts.Client().Get(ts.URL + "/live" + topicsOf("A") + "&ticket=" + body.Ticket)
	if err != nil {
		t.Fatal(err)
	}
	again.Body.Close()
	if again.StatusCode != http.StatusUnauthorized {
		t.Errorf("the ticket used twice: %d, want 401", again.StatusCode)
	}
}
