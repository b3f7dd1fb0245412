package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/ssegate/ssegate/proxy/auth"
)

const secret = "0123456789abcdef0123456789abcdef"

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func request(token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/me", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

func newJWT(t *testing.T, cfg auth.JWTConfig) *auth.JWT {
	t.Helper()
	if cfg.Header == "" && cfg.Cookie == "" && cfg.QueryParam == "" {
		cfg.Header = "Authorization"
	}
	j, err := auth.NewJWT(t.Context(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// reasonOf is the refusal's reason, "" when the token was accepted.
func reasonOf(t *testing.T, j *auth.JWT, r *http.Request) string {
	t.Helper()
	_, err := j.Authenticate(r)
	var refused *auth.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, auth.ErrNoCredentials):
		return "no credentials"
	case errors.As(err, &refused):
		return refused.Reason
	}
	t.Fatalf("unexpected error %v", err)
	return ""
}

func TestJWTAlgorithmFamilies(t *testing.T) {
	t.Parallel()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	good := jwt.MapClaims{"sub": "ada", "iss": "issuer", "aud": "ssegate", "exp": now.Add(time.Hour).Unix()}
	families := []struct {
		name   string
		cfg    auth.JWTConfig
		method jwt.SigningMethod
		key    any
		wrong  any
	}{
		{"HS256", auth.JWTConfig{HMACSecret: []byte(secret), Algorithms: []string{"HS256"}}, jwt.SigningMethodHS256, []byte(secret), []byte("another secret of thirty-two bytes")},
		{"RS256", auth.JWTConfig{PublicKey: &rsaKey.PublicKey, Algorithms: []string{"RS256"}}, jwt.SigningMethodRS256, rsaKey, mustRSA(t)},
		{"ES256", auth.JWTConfig{PublicKey: &ecKey.PublicKey, Algorithms: []string{"ES256"}}, jwt.SigningMethodES256, ecKey, mustEC(t)},
		{"EdDSA", auth.JWTConfig{PublicKey: edPub, Algorithms: []string{"EdDSA"}}, jwt.SigningMethodEdDSA, edKey, mustEd(t)},
	}
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			f.cfg.Issuer, f.cfg.Audience = "issuer", "ssegate"
			j := newJWT(t, f.cfg)
			with := func(k string, v any) jwt.MapClaims {
				c := jwt.MapClaims{}
				for kk, vv := range good {
					c[kk] = vv
				}
				c[k] = v
				return c
			}
			cases := []struct {
				name, token, want string
			}{
				{"valid", sign(t, f.method, f.key, good, ""), ""},
				{"expired", sign(t, f.method, f.key, with("exp", now.Add(-time.Minute).Unix()), ""), "token expired"},
				{"not yet valid", sign(t, f.method, f.key, with("nbf", now.Add(time.Hour).Unix()), ""), "token not valid yet"},
				{"other audience", sign(t, f.method, f.key, with("aud", "someone-else"), ""), "token is for another audience"},
				{"other issuer", sign(t, f.method, f.key, with("iss", "mallory"), ""), "token from another issuer"},
				{"wrong key", sign(t, f.method, f.wrong, good, ""), "token signature not valid"},
				{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good, ""), "token signature not valid"},
				{"garbage", "not.a.token", "token malformed"},
				{"missing", "", "no credentials"},
			}
			for _, c := range cases {
				if got := reasonOf(t, j, request(c.token)); got != c.want {
					t.Errorf("%s: %q, want %q", c.name, got, c.want)
				}
			}
			id, err := j.Authenticate(request(sign(t, f.method, f.key, good, "")))
			if err != nil || id.Claims["sub"] != "ada" || id.Expires.Unix() != now.Add(time.Hour).Unix() {
				t.Errorf("identity %+v, %v", id, err)
			}
		})
	}
}

// A token signed with HMAC over the RSA public key, hoping the verifier
// takes the public key as the secret, is refused.
func TestJWTAlgorithmConfusion(t *testing.T) {
	t.Parallel()
	rsaKey := mustRSA(t)
	pub, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	j := newJWT(t, auth.JWTConfig{PublicKey: &rsaKey.PublicKey, Algorithms: []string{"RS256"}})
	forged := sign(t, jwt.SigningMethodHS256, pemBytes, jwt.MapClaims{"sub": "mallory"}, "")
	if got := reasonOf(t, j, request(forged)); got == "" {
		t.Error("HS256 token over the public key accepted")
	}
}

// The token is looked for only where the block says.
func TestJWTPlaces(t *testing.T) {
	t.Parallel()
	token := sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "ada", "exp": time.Now().Add(time.Hour).Unix()}, "")
	inQuery := httptest.NewRequest(http.MethodGet, "/me?token="+token, nil)
	inCookie := httptest.NewRequest(http.MethodGet, "/me", nil)
	inCookie.AddCookie(&http.Cookie{Name: "session", Value: token})
	cfg := auth.JWTConfig{HMACSecret: []byte(secret), Algorithms: []string{"HS256"}}

	headerOnly := newJWT(t, cfg)
	for name, r := range map[string]*http.Request{"query": inQuery, "cookie": inCookie} {
		if got := reasonOf(t, headerOnly, r); got != "no credentials" {
			t.Errorf("header-only block, token in %s: %q", name, got)
		}
	}
	cfg.Cookie, cfg.QueryParam = "session", "token"
	everywhere := newJWT(t, cfg)
	for name, r := range map[string]*http.Request{"query": inQuery, "cookie": inCookie} {
		if got := reasonOf(t, everywhere, r); got != "" {
			t.Errorf("token in %s: %q", name, got)
		}
	}
	forever := sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "ada"}, "")
	if got := reasonOf(t, everywhere, httptest.NewRequest(http.MethodGet, "/me?token="+forever, nil)); !strings.Contains(got, "no exp") {
		t.Errorf("token without exp where a query token is allowed: %q", got)
	}
}

// jwks serves a key set that the test can rotate.
type jwks struct {
	delay time.Duration // before each answer, as a key server across a network takes
	mu    sync.Mutex
	keys  []map[string]string
	hits  int
}

// fetches is how many times the set was fetched.
func (s *jwks) fetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits
}

func (s *jwks) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hits++
	_ = json.NewEncoder(w).Encode(map[string]any{"keys": s.keys})
}

func (s *jwks) set(kid string, k *rsa.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b64 := base64.RawURLEncoding.EncodeToString
	s.keys = []map[string]string{{
		"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes()),
	}}
}

// A rotated key is taken up at its first token, also from a key server
// that takes a while to answer (the refresh was once bounded by the 1 ms
// allowed for waiting on its rate limit).
func TestJWKSRotation(t *testing.T) {
	t.Parallel()
	set := &jwks{delay: 20 * time.Millisecond}
	k1, k2 := mustRSA(t), mustRSA(t)
	set.set("k1", &k1.PublicKey)
	ts := httptest.NewServer(set)
	defer ts.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	j, err := auth.NewJWT(ctx, auth.JWTConfig{JWKSURL: ts.URL, Algorithms: []string{"RS256"}, Header: "Authorization", HTTP: ts.Client()}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	// The first fetch runs in the background; a token before it ends would
	// spend the refresh an unknown key id may make.
	for deadline := time.Now().Add(10 * time.Second); set.fetches() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the key set was never fetched")
		}
	}
	claims := jwt.MapClaims{"sub": "ada"}
	if got := reasonOf(t, j, request(sign(t, jwt.SigningMethodRS256, k1, claims, "k1"))); got != "" {
		t.Fatalf("token of the published key: %q", got)
	}
	// The issuer rotates: a token with the new key id makes the set be
	// fetched again.
	set.set("k2", &k2.PublicKey)
	if got := reasonOf(t, j, request(sign(t, jwt.SigningMethodRS256, k2, claims, "k2"))); got != "" {
		t.Errorf("token of the rotated key: %q", got)
	}
	if got := reasonOf(t, j, request(sign(t, jwt.SigningMethodRS256, k1, claims, "k1"))); got == "" {
		t.Error("token of the withdrawn key still accepted")
	}
	// Unknown ids do not make it hammer the key server.
	before := set.fetches()
	for range 20 {
		reasonOf(t, j, request(sign(t, jwt.SigningMethodRS256, k2, claims, "forged-id")))
	}
	if n := set.fetches() - before; n > 1 {
		t.Errorf("%d JWKS fetches for 20 tokens with unknown ids", n)
	}
}

func TestBearer(t *testing.T) {
	t.Parallel()
	b := auth.NewBearer([]string{"service-token"})
	for token, ok := range map[string]bool{"service-token": true, "service-tokem": false, "": false} {
		_, err := b.Authenticate(request(token))
		if (err == nil) != ok {
			t.Errorf("token %q: %v", token, err)
		}
	}
}

func mustRSA(t *testing.T) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustEC(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustEd(t *testing.T) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
