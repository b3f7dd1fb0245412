package hookverify

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

// HMAC verifies the simplest and most common scheme: HMAC-SHA256 of the body,
// hex-encoded, in header, after prefix (which may be empty). GitHub uses
// header "X-Hub-Signature-256" and prefix "sha256=". Nothing in the scheme
// dates a request, so a captured one can be replayed at will: the delivery
// id beside it is not signed, so de-duplicating by it only stops honest
// retries. Prefer a timestamped scheme where the sender offers one.
func HMAC(secret []byte, header, prefix string) Verifier {
	return hmacVerifier{secret: bytes.Clone(secret), header: header, prefix: prefix}
}

type hmacVerifier struct {
	secret         []byte
	header, prefix string
}

var _ Verifier = hmacVerifier{}

func (v hmacVerifier) Verify(h http.Header, body []byte, _ time.Time) error {
	value := h.Get(v.header)
	if value == "" {
		return reject("missing %s header", v.header)
	}
	encoded, ok := strings.CutPrefix(value, v.prefix)
	if !ok {
		return reject("signature does not start with %q", v.prefix)
	}
	sig, err := hex.DecodeString(encoded)
	if err != nil {
		return reject("signature is not hex")
	}
	if !hmac.Equal(sig, sum(v.secret, body)) {
		return reject("signature does not match")
	}
	return nil
}

// sum is HMAC-SHA256 over the concatenation of parts, which saves callers
// from building the signed string in a fresh buffer.
func sum(key []byte, parts ...[]byte) []byte {
	mac := hmac.New(sha256.New, key)
	for _, p := range parts {
		mac.Write(p)
	}
	return mac.Sum(nil)
}
