package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
)

// Bearer accepts requests whose Authorization header carries one of a set
// of static tokens: for services, not browsers (EventSource cannot set the
// header).
type Bearer struct {
	digests [][sha256.Size]byte
}

var _ Authenticator = (*Bearer)(nil)

// NewBearer accepts tokens.
func NewBearer(tokens []string) *Bearer {
	b := &Bearer{}
	for _, t := range tokens {
		b.digests = append(b.digests, sha256.Sum256([]byte(t)))
	}
	return b
}

// Authenticate checks the token against every accepted one, in constant
// time: digests have one length whatever the tokens'.
func (b *Bearer) Authenticate(r *http.Request) (*Identity, error) {
	token := bearerToken(r.Header, "Authorization")
	if token == "" {
		return nil, ErrNoCredentials
	}
	d := sha256.Sum256([]byte(token))
	match := 0
	for _, want := range b.digests {
		match |= subtle.ConstantTimeCompare(d[:], want[:])
	}
	if match != 1 {
		return nil, refuse("bearer token not accepted")
	}
	return &Identity{}, nil
}

// Challenge names the scheme.
func (b *Bearer) Challenge() string { return `Bearer realm="ssegate"` }
