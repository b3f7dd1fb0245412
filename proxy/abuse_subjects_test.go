package proxy_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ssegate/ssegate/internal/loopback"
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
	h := start(t, `
auth "jwt" "users" {
  hmac_secret = "`+jwtSecret+`"
}
route "/me" {
  auth = "users"
  source "nats" { subject = "user.${auth.claims.sub}.notes" }
}`)
	bearer := func(sub string) http.Header {
		return http.Header{"Authorization": {"Bearer " + token(t, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()})}}
	}
	composed := h.open("/me", bearer("jos\u00e9"))
	h.expectStatus("/me", bearer(strings.Repeat("x", 4100)), http.StatusForbidden)
	h.expectStatus("/me", bearer("jose\u0301"), http.StatusForbidden)
	h.stillConnected(composed, "user.jos\u00e9.notes")
}
