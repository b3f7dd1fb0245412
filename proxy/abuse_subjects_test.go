package proxy_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/internal/ssetest"
	"github.com/ssegate/ssegate/proxy"
	"github.com/ssegate/ssegate/sources"
)

// Abuse: subjects built from what a client sends. nats-server closes a
// connection whose protocol line is longer than its max_control_line, and
// a closed connection would cut every stream of the replica off NATS: no
// request may make ssegate send such a line.

// expectStatus sends a plain GET to path and checks the answer's status.
func (h *harness) expectStatus(path string, header http.Header, want int) {
	h.t.Helper()
	t := h.t.(*testing.T)
	if resp := get(t, h.ts.URL+path, header); resp.StatusCode != want {
		t.Errorf("GET %.80s: %d, want %d", path, resp.StatusCode, want)
	}
}

// stillConnected checks that NATS kept the replica's connection and that
// a stream opened before the abuse still gets events.
func (h *harness) stillConnected(c *client, subject string) {
	h.t.Helper()
	if !h.srv.Conn().IsConnected() {
		h.t.Fatalf("NATS connection %v after the abuse", h.srv.Conn().Status())
	}
	h.publish(subject, "still here")
	c.ExpectData("still here")
}

func TestLongPathParameterNeverReachesNATS(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/t/{name}" {
  source "nats" { subject = "t.${path.name}" }
}
route "/m/{a}/{b}/{c}/{d}/{e}" {
  source "nats" { subject = "m.${path.a}.${path.b}.${path.c}.${path.d}.${path.e}" }
}`)
	ok := h.open("/t/ok", nil)
	// One token past the limit; the line nats-server refused was 4,100.
	h.expectStatus("/t/"+strings.Repeat("A", 4100), nil, http.StatusBadRequest)
	h.expectStatus("/t/"+strings.Repeat("A", sources.MaxTokenLength+1), nil, http.StatusBadRequest)
	// Each token within its bound, the subject past its own.
	long := strings.Repeat("B", sources.MaxTokenLength)
	h.expectStatus("/m/"+strings.Repeat(long+"/", 4)+long, nil, http.StatusBadRequest)
	// A control character, and a value HCL would change into another.
	h.expectStatus("/t/a%01b", nil, http.StatusBadRequest)
	h.expectStatus("/t/"+url.PathEscape("jose\u0301"), nil, http.StatusBadRequest)
	h.stillConnected(ok, "t.ok")

	// The longest value allowed works end to end.
	c := h.open("/t/"+strings.Repeat("C", sources.MaxTokenLength), nil)
	h.publish("t."+strings.Repeat("C", sources.MaxTokenLength), "long but fine")
	c.ExpectData("long but fine")
}

func TestLongPathParameterOnJetStreamRoute(t *testing.T) {
	t.Parallel()
	h := startOn(t, loopback.JetStream(t, t.TempDir()), `
route "/t/{name}" {
  history { store = "jetstream" }
  source "nats" { subject = "t.${path.name}" }
}`)
	ok := h.open("/t/ok", nil)
	h.expectStatus("/t/"+strings.Repeat("A", 4100), nil, http.StatusBadRequest)
	if !h.srv.Conn().IsConnected() {
		t.Fatal("NATS connection lost")
	}
	if _, err := h.pub.Request("t.ok", []byte("still here"), wait); err != nil {
		t.Fatal(err) // JetStream acknowledges what it stores
	}
	ok.ExpectData("still here")
}

// A claim is the client's to choose within what its issuer signs: one too
// long for a subject, or one whose bytes HCL would change into another
// user's, is refused, and the user it would impersonate is unaffected.
func TestClaimsMakeOnlyValidSubjects(t *testing.T) {
	t.Parallel()
	h := start(t, perUserNotes)
	bearer := func(sub string) http.Header {
		return bearerWith(t, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()})
	}
	composed := h.open("/me", bearer("jos\u00e9"))
	h.expectStatus("/me", bearer(strings.Repeat("x", 4100)), http.StatusForbidden)
	h.expectStatus("/me", bearer("jose\u0301"), http.StatusForbidden)
	h.stillConnected(composed, "user.jos\u00e9.notes")
}

// Whatever makes NATS close the connection for good (here a protocol
// line longer than the server takes, as a long path parameter once
// sent), a new connection replaces it: streams are subscribed again,
// JetStream routes go on from the last event delivered, memory routes
// tell their clients events may have been missed, and webhooks publish.
func TestClosedConnectionIsReplaced(t *testing.T) {
	t.Parallel()
	ns := loopback.JetStream(t, t.TempDir())
	srv, ts := serveConfig(t, fmt.Sprintf(`
nats { url = %q }
route "/mem" {
  source "nats" { subject = "mem" }
}
route "/js" {
  history { store = "jetstream" }
  source "nats" { subject = "js" }
}
route "/deploys" {
  source "webhook" {
    path = "/hooks/deploy"
    verify "none" {}
  }
}`, ns.ClientURL()))
	pub := connect(t, ns)
	js, err := jetstream.New(pub)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	mem := ssetest.Open(t, ts.Client(), ts.URL+"/mem", nil)
	stored := ssetest.Open(t, ts.Client(), ts.URL+"/js", nil)
	deploys := ssetest.Open(t, ts.Client(), ts.URL+"/deploys", nil)
	// toMem publishes with core NATS, toStored to JetStream.
	toMem := func(data string) {
		t.Helper()
		if err := pub.Publish("mem", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	toStored := func(data string) {
		t.Helper()
		if _, err := js.Publish(ctx, "js", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	toMem("m1")
	mem.ExpectData("m1")
	toStored("j1")
	stored.ExpectData("j1")

	old := srv.Conn()
	_ = old.Publish("x."+strings.Repeat("A", 5000), nil)
	_ = old.Flush()
	eventually(t, "NATS to close the connection", old.IsClosed)
	toStored("j2 while away")
	eventually(t, "a new connection", func() bool { return srv.Conn() != old && srv.Conn().IsConnected() })

	stored.ExpectData("j2 while away")
	for _, c := range []*client{mem, deploys} {
		if ev := c.Next(); ev.Type != proxy.ResetEvent {
			t.Fatalf("memory route after the gap: %+v, want %s", ev, proxy.ResetEvent)
		}
	}
	if err := srv.Conn().Flush(); err != nil { // its subscriptions are known to NATS
		t.Fatal(err)
	}
	toMem("m2")
	mem.ExpectData("m2")
	toStored("j3")
	stored.ExpectData("j3")
	if code, answer := postBody(t, ts.URL+"/hooks/deploy", "d1"); code != http.StatusAccepted {
		t.Fatalf("webhook after the gap: %d %q", code, answer)
	}
	deploys.ExpectData("d1")
}
