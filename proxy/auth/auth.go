// Package auth checks who opens a stream: static bearer tokens and JWTs
// (HMAC, RSA, ECDSA and EdDSA keys, or a JWKS URL), looked for where a
// browser's EventSource can put them.
package auth

import (
	"errors"
	"net/http"
	"strings"
	"time"
)

// Identity is who a request was authenticated as.
type Identity struct {
	// Claims are the verified claims (for a JWT) or nil; routes read them
	// as auth.claims.
	Claims map[string]any
	// Expires is when the credentials stop being valid; zero for never.
	Expires time.Time
	// Consume, when set, spends single-use credentials (a ticket). It is
	// called only once the stream is sure to start, so a client turned
	// away by a limit keeps its ticket; false means another request spent
	// it first.
	Consume func() bool
}

// Authenticator checks a request's credentials.
type Authenticator interface {
	// Authenticate returns the identity, ErrNoCredentials when the request
	// carries none of the kind this authenticator reads, or an *Error.
	Authenticate(r *http.Request) (*Identity, error)
	// Challenge is the WWW-Authenticate value of a 401 for this method.
	Challenge() string
}

// ErrNoCredentials is a request without credentials of the kind looked for.
var ErrNoCredentials = errors.New("no credentials")

// Error is credentials that were found and refused; Reason is safe to send
// back (it never holds the token). Status is 401, or 403 for a client
// that is known and not allowed.
type Error struct {
	Reason string
	Status int
}

func (e *Error) Error() string { return e.Reason }

func refuse(reason string) error { return &Error{Reason: reason, Status: 401} }

// ErrUnavailable is an authenticator that cannot decide now (its auth
// service is down): the client should come back later, not give up.
var ErrUnavailable = errors.New("authentication unavailable")

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(h http.Header, name string) string {
	scheme, token, ok := strings.Cut(h.Get(name), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}
