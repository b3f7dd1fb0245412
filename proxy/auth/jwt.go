package auth

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
)

// JWTConfig says how tokens are verified and where they are found.
type JWTConfig struct {
	// One key source: a shared secret, a public key, or a JWKS URL.
	HMACSecret []byte
	PublicKey  crypto.PublicKey
	JWKSURL    string

	// Algorithms allowed; others are refused, "none" always is.
	Algorithms []string
	Issuer     string
	Audience   string
	Leeway     time.Duration

	// Where the token is looked for, in this order; empty ones are not
	// looked at. Header holds "Bearer <token>".
	Header, Cookie, QueryParam string

	// HTTP fetches the JWKS.
	HTTP *http.Client
}

// JWT verifies JSON Web Tokens.
type JWT struct {
	cfg    JWTConfig
	key    jwt.Keyfunc
	parser *jwt.Parser
}

var _ Authenticator = (*JWT)(nil)

// jwksRefreshEvery bounds how often an unknown key id fetches the JWKS
// again, so forged ids cannot make us hammer the key server.
const jwksRefreshEvery = 10 * time.Second

// jwksTimeout bounds one fetch of the JWKS.
const jwksTimeout = 10 * time.Second

// NewJWT prepares a verifier. With a JWKS URL, the key set is fetched now
// (a failure is logged and retried, not fatal: the key server may come up
// later), refreshed hourly and when a token names an unknown key, until
// ctx ends.
func NewJWT(ctx context.Context, cfg JWTConfig, log zerolog.Logger) (*JWT, error) {
	if len(cfg.Algorithms) == 0 {
		return nil, errors.New("no algorithms allowed")
	}
	j := &JWT{cfg: cfg}
	switch {
	case cfg.JWKSURL != "":
		key, err := jwksKeyfunc(ctx, cfg, log)
		if err != nil {
			return nil, fmt.Errorf("JWKS %s: %w", cfg.JWKSURL, err)
		}
		j.key = key
	case cfg.HMACSecret != nil:
		j.key = func(*jwt.Token) (any, error) { return cfg.HMACSecret, nil }
	case cfg.PublicKey != nil:
		j.key = func(*jwt.Token) (any, error) { return cfg.PublicKey, nil }
	default:
		return nil, errors.New("no key: set hmac_secret, public_key_file or jwks_url")
	}
	// The allowed algorithms are fixed by the config, never taken from the
	// token, so a token cannot pick "none" or turn a public key into an
	// HMAC secret.
	// Numbers stay exact: a large numeric user id rounded to a float would
	// put two users on one subject.
	opts := []jwt.ParserOption{jwt.WithValidMethods(cfg.Algorithms), jwt.WithLeeway(cfg.Leeway), jwt.WithIssuedAt(), jwt.WithJSONNumber()}
	if cfg.QueryParam != "" {
		// A token in a URL ends up in logs; one that never expires would
		// open streams forever.
		opts = append(opts, jwt.WithExpirationRequired())
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	j.parser = jwt.NewParser(opts...)
	return j, nil
}

// Authenticate finds the token and verifies it.
func (j *JWT) Authenticate(r *http.Request) (*Identity, error) {
	token := j.find(r)
	if token == "" {
		return nil, ErrNoCredentials
	}
	claims := jwt.MapClaims{}
	if _, err := j.parser.ParseWithClaims(token, claims, j.key); err != nil {
		return nil, refuse(reason(err))
	}
	id := &Identity{Claims: claims}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		id.Expires = exp.Add(j.cfg.Leeway)
	}
	return id, nil
}

func (j *JWT) find(r *http.Request) string {
	if j.cfg.Header != "" {
		if t := bearerToken(r.Header, j.cfg.Header); t != "" {
			return t
		}
	}
	if j.cfg.Cookie != "" {
		if c, err := r.Cookie(j.cfg.Cookie); err == nil && c.Value != "" {
			return c.Value
		}
	}
	if j.cfg.QueryParam != "" {
		return r.URL.Query().Get(j.cfg.QueryParam)
	}
	return ""
}

// reason says what is wrong with a token in words a client can act on,
// without echoing it.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "token is for another audience"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "token from another issuer"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "token signature not valid"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token has no exp; tokens in URLs must expire"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "token malformed"
	}
	return "token not valid"
}

// Challenge names the scheme.
func (j *JWT) Challenge() string { return `Bearer realm="ssegate"` }

// jwksKeyfunc finds a token's key in the key set at cfg.JWKSURL. A key id
// it does not know makes it fetch the set again, at most once per
// jwksRefreshEvery; a token that comes meanwhile is refused at once
// rather than held.
//
// Two views share the fetched set: one only reads it, the other fetches
// it again when the id is unknown. keyfunc's own limit on such fetches
// would bound the fetch by the time it allows for waiting on the limit,
// which must be short (requests are not held) and is then too short for
// the fetch itself.
func jwksKeyfunc(ctx context.Context, cfg JWTConfig, log zerolog.Logger) (jwt.Keyfunc, error) {
	set, err := jwkset.NewStorageFromHTTP(cfg.JWKSURL, jwkset.HTTPClientStorageOptions{
		Client:                    cfg.HTTP,
		Ctx:                       ctx,
		HTTPTimeout:               jwksTimeout,
		NoErrorReturnFirstHTTPReq: true,
		RefreshInterval:           time.Hour,
		RefreshErrorHandler: func(_ context.Context, err error) {
			log.Warn().Err(err).Str("jwks_url", cfg.JWKSURL).Msg("JWKS refresh failed")
		},
	})
	if err != nil {
		return nil, err
	}
	urls := map[string]jwkset.Storage{cfg.JWKSURL: set}
	read, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{HTTPURLs: urls})
	if err != nil {
		return nil, err
	}
	fetch, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{HTTPURLs: urls, RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1)})
	if err != nil {
		return nil, err
	}
	known, err := keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: read})
	if err != nil {
		return nil, err
	}
	refetched, err := keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: fetch})
	if err != nil {
		return nil, err
	}
	limit := rate.NewLimiter(rate.Every(jwksRefreshEvery), 1)
	return func(t *jwt.Token) (any, error) {
		key, err := known.Keyfunc(t)
		if !errors.Is(err, jwkset.ErrKeyNotFound) || !limit.Allow() {
			return key, err
		}
		fetchCtx, cancel := context.WithTimeout(ctx, jwksTimeout)
		defer cancel()
		return refetched.KeyfuncCtx(fetchCtx)(t)
	}, nil
}
