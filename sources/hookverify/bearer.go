package hookverify

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"
)

// Bearer accepts a request whose "Authorization: Bearer <token>" is one of
// tokens, for senders that cannot sign but can send a static header. Several
// tokens allow rotation. The scheme is matched case-insensitively, as HTTP
// requires. An empty token is never accepted.
func Bearer(tokens []string) Verifier {
	digests := make([][sha256.Size]byte, len(tokens))
	for i, t := range tokens {
		digests[i] = sha256.Sum256([]byte(t))
	}
	return bearerVerifier{digests: digests}
}

// bearerVerifier keeps digests, not tokens: equal-length digests make the
// comparison take the same time whatever the token's length or content.
type bearerVerifier struct {
	digests [][sha256.Size]byte
}

var _ Verifier = bearerVerifier{}

func (v bearerVerifier) Verify(h http.Header, _ []byte, _ time.Time) error {
	value := h.Get("Authorization")
	if value == "" {
		return reject("missing Authorization bearer token")
	}
	scheme, token, _ := strings.Cut(value, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return reject("Authorization scheme is not Bearer")
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return reject("missing Authorization bearer token")
	}
	got := sha256.Sum256([]byte(token))
	// Compare against every token, so timing does not reveal which matched.
	match := 0
	for _, d := range v.digests {
		match |= subtle.ConstantTimeCompare(got[:], d[:])
	}
	if match != 1 {
		return reject("bearer token not accepted")
	}
	return nil
}
