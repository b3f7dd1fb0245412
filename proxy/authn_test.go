package proxy_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ssegate/ssegate/proxy"
)

const jwtSecret = "0123456789abcdef0123456789abcdef"

const userRoutes = `
auth "jwt" "users" {
  hmac_secret = "` + jwtSecret + `"
  cookie      = "session"
  query_param = "token"
}
auth "bearer" "services" {
  tokens = ["service-token"]
}
route "/me" {
  auth = ["users", "services"]
  source "nats" { subject = "user.${try(auth.claims.sub, "service")}.notes" }
}
route "/stocks/{symbol}" {
  auth  = "users"
  allow = contains(auth.claims.symbols, path.symbol)
  source "nats" { subject = "stocks.${path.symbol}" }
}`

func token(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func cookie(tok string) http.Header { return http.Header{"Cookie": {"session=" + tok}} }

// Each user gets a stream of their own from one route.
func TestPerUserStreams(t *testing.T) {
	h := start(t, userRoutes)
	exp := time.Now().Add(time.Hour).Unix()
	ada := h.open("/me", cookie(token(t, jwt.MapClaims{"sub": "ada", "exp": exp})))
	bob := h.open("/me?token="+token(t, jwt.MapClaims{"sub": "bob", "exp": exp}), nil)
	svc := h.open("/me", http.Header{"Authorization": {"Bearer service-token"}})
	h.publish("user.ada.notes", "for ada")
	h.publish("user.bob.notes", "for bob")
	h.publish("user.service.notes", "for services")
	ada.expectData("for ada")
	bob.expectData("for bob")
	svc.expectData("for services")
	for _, c := range []*client{ada, bob, svc} {
		c.expectQuiet(50 * time.Millisecond)
	}
	if n := h.srv.OpenStreams(); n != 3 {
		t.Errorf("%d streams, want one per user", n)
	}
}

func TestAuthStatuses(t *testing.T) {
	h := start(t, userRoutes)
	exp := time.Now().Add(time.Hour).Unix()
	tests := []struct {
		name, path string
		header     http.Header
		status     int
		reason     string
	}{
		{"no credentials", "/me", nil, 401, "credentials required"},
		{"expired", "/me", cookie(token(t, jwt.MapClaims{"sub": "ada", "exp": time.Now().Add(-time.Hour).Unix()})), 401, "token expired"},
		{"wrong service token", "/me", http.Header{"Authorization": {"Bearer nope"}}, 401, "bearer token not accepted"},
		{"symbol not in claims", "/stocks/TSLA", cookie(token(t, jwt.MapClaims{"sub": "ada", "exp": exp, "symbols": []string{"AAPL"}})), 403, "not allowed"},
		{"claims lack symbols", "/stocks/TSLA", cookie(token(t, jwt.MapClaims{"sub": "ada", "exp": exp})), 403, "allow"},
	}
	for _, tt := range tests {
		resp := get(t, h.ts.URL+tt.path, tt.header)
		body := make([]byte, 512)
		n, _ := resp.Body.Read(body)
		if resp.StatusCode != tt.status || !strings.Contains(string(body[:n]), tt.reason) {
			t.Errorf("%s: %d %q, want %d with %q", tt.name, resp.StatusCode, body[:n], tt.status, tt.reason)
		}
		if tt.status == 401 && !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", tt.name, resp.Header.Get("WWW-Authenticate"))
		}
	}
	ok := h.open("/stocks/AAPL", cookie(token(t, jwt.MapClaims{"sub": "ada", "exp": exp, "symbols": []string{"AAPL"}})))
	h.publish("stocks.AAPL", "187.5")
	ok.expectData("187.5")
}

// A stream opened with a token ends when the token does, with an event
// that tells the page to get a fresh one.
func TestTokenExpiryClosesStream(t *testing.T) {
	h := start(t, userRoutes)
	c := h.open("/me", cookie(token(t, jwt.MapClaims{"sub": "ada", "exp": time.Now().Add(1500 * time.Millisecond).Unix()})))
	h.publish("user.ada.notes", "before")
	c.expectData("before")
	ev := c.next()
	if ev.Type != proxy.AuthExpiredEvent {
		t.Fatalf("got %+v, want %s", ev, proxy.AuthExpiredEvent)
	}
	c.waitEnd()
}
