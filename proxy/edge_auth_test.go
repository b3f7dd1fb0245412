package proxy_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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

// bearerWith is an Authorization header with a token carrying claims.
func bearerWith(t *testing.T, claims jwt.MapClaims) http.Header {
	return http.Header{"Authorization": {"Bearer " + token(t, claims)}}
}

// perUserNotes is a route whose subject reads the token's sub claim.
const perUserNotes = `
auth "jwt" "users" {
  hmac_secret = "` + jwtSecret + `"
}
route "/me" {
  auth = "users"
  source "nats" { subject = "user.${auth.claims.sub}.notes" }
}`

// Each user gets a stream of their own from one route.
func TestPerUserStreams(t *testing.T) {
	t.Parallel()
	h := start(t, userRoutes)
	exp := time.Now().Add(time.Hour).Unix()
	ada := h.open("/me", cookie(token(t, jwt.MapClaims{"sub": "ada", "exp": exp})))
	bob := h.open("/me?token="+token(t, jwt.MapClaims{"sub": "bob", "exp": exp}), nil)
	svc := h.open("/me", http.Header{"Authorization": {"Bearer service-token"}})
	h.publish("user.ada.notes", "for ada")
	h.publish("user.bob.notes", "for bob")
	h.publish("user.service.notes", "for services")
	ada.ExpectData("for ada")
	bob.ExpectData("for bob")
	svc.ExpectData("for services")
	for _, c := range []*client{ada, bob, svc} {
		c.ExpectQuiet(50 * time.Millisecond)
	}
	if n := h.srv.OpenStreams(); n != 3 {
		t.Errorf("%d streams, want one per user", n)
	}
}

func TestAuthStatuses(t *testing.T) {
	t.Parallel()
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
	ok.ExpectData("187.5")
}

// A stream opened with a token ends when the token does, with an event
// that tells the page to get a fresh one.
func TestTokenExpiryClosesStream(t *testing.T) {
	t.Parallel()
	h := start(t, userRoutes)
	c := h.open("/me", cookie(token(t, jwt.MapClaims{"sub": "ada", "exp": time.Now().Add(1500 * time.Millisecond).Unix()})))
	h.publish("user.ada.notes", "before")
	c.ExpectData("before")
	ev := c.Next()
	if ev.Type != proxy.AuthExpiredEvent {
		t.Fatalf("got %+v, want %s", ev, proxy.AuthExpiredEvent)
	}
	c.WaitEnd()
}

// A forward-auth service allows, denies and fails; what it says about the
// user becomes claims.
func TestForwardAuth(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	calls := 0
	authsvc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		if r.URL.Path == "/login" {
			w.WriteHeader(http.StatusOK) // a login page, not a yes
			return
		}
		if strings.Contains(r.Header.Get("X-Forwarded-Uri"), "ticket") {
			t.Errorf("the auth service was shown a ticket: %s", r.Header.Get("X-Forwarded-Uri"))
		}
		switch r.Header.Get("Authorization") {
		case "Bearer ada":
			w.Header().Set("X-User-Id", "ada")
			w.WriteHeader(http.StatusNoContent)
		case "Bearer banned":
			w.WriteHeader(http.StatusForbidden)
		case "Bearer crash":
			w.WriteHeader(http.StatusInternalServerError)
		case "Bearer redirect":
			http.Redirect(w, r, "/login", http.StatusFound)
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer authsvc.Close()
	h := start(t, `
auth "forward" "gateway" {
  url          = "`+authsvc.URL+`"
  copy_headers = ["X-User-Id"]
  cache_ttl    = "1m"
}
route "/me" {
  auth  = "gateway"
  retry = "2s"
  source "nats" { subject = "user.${auth.claims.x_user_id}" }
}`)
	bearer := func(v string) http.Header { return http.Header{"Authorization": {"Bearer " + v}} }
	ada := h.open("/me", bearer("ada"))
	h.publish("user.ada", "hello ada")
	ada.ExpectData("hello ada")

	for who, want := range map[string]int{"nobody": 401, "banned": 403, "crash": 503, "redirect": 503} {
		if resp := get(t, h.ts.URL+"/me", bearer(who)); resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", who, resp.StatusCode, want)
		}
	}
	// An EventSource is never failed for the auth service's trouble.
	crash := h.open("/me", bearer("crash"))
	crash.WaitEnd()
	expectRetryHint(t, crash.Raw(), 2*time.Second)

	// Within cache_ttl the service is asked once per credentials.
	mu.Lock()
	before := calls
	mu.Unlock()
	h.open("/me?ticket=not-for-the-auth-service&page=2", bearer("ada")).Close()
	h.open("/me", bearer("ada")).Close()
	mu.Lock()
	defer mu.Unlock()
	if calls != before+1 {
		t.Errorf("auth service asked %d times, want once: for the new URI, not again for the cached one", calls-before)
	}
}

// A browser swaps its cookie for a ticket and opens the stream with it,
// once.
func TestTickets(t *testing.T) {
	t.Parallel()
	h := start(t, `
auth "jwt" "users" {
  hmac_secret = "`+jwtSecret+`"
  cookie      = "session"
  ticket { ttl = "1s" }
}
route "/me" {
  auth = "users"
  source "nats" { subject = "user.${auth.claims.sub}" }
}`)
	issue := func() string {
		req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/ssegate/tickets/users", nil)
		req.Header = cookie(token(t, jwt.MapClaims{"sub": "ada", "exp": time.Now().Add(time.Hour).Unix()}))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Ticket    string `json:"ticket"`
			ExpiresIn int    `json:"expires_in"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 || body.Ticket == "" || body.ExpiresIn != 1 {
			t.Fatalf("ticket: %d %+v %v", resp.StatusCode, body, err)
		}
		return body.Ticket
	}
	if resp := get(t, h.ts.URL+"/ssegate/tickets/users", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET on the ticket path: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/ssegate/tickets/users", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("ticket without credentials: %v %v", resp, err)
	}

	tk := issue()
	c := h.open("/me?ticket="+tk, nil)
	h.publish("user.ada", "via ticket")
	c.ExpectData("via ticket")
	if resp := get(t, h.ts.URL+"/me?ticket="+tk, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("ticket used twice: %d", resp.StatusCode)
	}
	// Expiry is TestTicketExpires's, on synctest's clock.
}

// Claims are the client's to choose: one that would widen a per-user
// subject to a wildcard, or add tokens, is refused; large numeric claims
// stay exact.
func TestClaimsCannotWidenSubjects(t *testing.T) {
	t.Parallel()
	h := start(t, perUserNotes)
	bearer := func(sub any) http.Header { return bearerWith(t, jwt.MapClaims{"sub": sub}) }
	for _, sub := range []any{"*", ">", "a.b", "a b"} {
		if resp := get(t, h.ts.URL+"/me", bearer(sub)); resp.StatusCode != http.StatusForbidden {
			t.Errorf("sub %q: %d, want 403", sub, resp.StatusCode)
		}
	}
	a := h.open("/me", bearer(json.Number("1234567890123456789")))
	b := h.open("/me", bearer(json.Number("1234567890123456790")))
	h.publish("user.1234567890123456789.notes", "for a")
	a.ExpectData("for a")
	b.ExpectQuiet(50 * time.Millisecond)
}

// A ticket is spent only by a stream that starts: a client turned away by
// a limit comes back with the same ticket.
func TestTicketKeptWhenTurnedAway(t *testing.T) {
	t.Parallel()
	h := start(t, `
auth "jwt" "users" {
  hmac_secret = "`+jwtSecret+`"
  ticket {}
}
route "/me" {
  auth        = "users"
  max_clients = 1
  source "nats" { subject = "user.${auth.claims.sub}" }
}`)
	req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/ssegate/tickets/users", nil)
	req.Header.Set("Authorization", "Bearer "+token(t, jwt.MapClaims{"sub": "ada"}))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Ticket string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()

	first := h.open("/me", http.Header{"Authorization": {"Bearer " + token(t, jwt.MapClaims{"sub": "bob"})}})
	turned := h.open("/me?ticket="+body.Ticket, nil)
	turned.WaitEnd() // 200 + retry: the route is full
	first.Close()
	eventually(t, "the slot to free", func() bool { return h.srv.Clients() == 0 })
	back := h.open("/me?ticket="+body.Ticket, nil)
	h.publish("user.ada", "welcome back")
	back.ExpectData("welcome back")
}

// A JWT block reads the Authorization header beside its cookie and query
// parameter (as the README's ticket example relies on), unless it says
// header = "".
func TestJWTHeaderReadBesideCookie(t *testing.T) {
	t.Parallel()
	h := start(t, userRoutes+`
auth "jwt" "cookie_only" {
  hmac_secret = "`+jwtSecret+`"
  header      = ""
  cookie      = "session"
}
route "/cookie-only" {
  auth = "cookie_only"
  source "nats" { subject = "only.${auth.claims.sub}" }
}`)
	tok := token(t, jwt.MapClaims{"sub": "ada", "exp": time.Now().Add(time.Hour).Unix()})
	bearer := http.Header{"Authorization": {"Bearer " + tok}}
	ada := h.open("/me", bearer)
	h.publish("user.ada.notes", "by header")
	ada.ExpectData("by header")
	if resp := get(t, h.ts.URL+"/cookie-only", bearer); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("header with header = \"\": %s, want 401", resp.Status)
	}
	h.open("/cookie-only", cookie(tok))
}
