package hookverify

import (
	"crypto/hmac"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"
)

// StandardWebhooks verifies the Standard Webhooks scheme
// (standardwebhooks.com, used by Svix and others): headers webhook-id,
// webhook-timestamp (unix seconds) and webhook-signature, a space-separated
// list of "v1,<base64 HMAC-SHA256 of '<id>.<timestamp>.<body>'>". Any v1 may
// match, so senders can rotate keys; other versions (v1a is an asymmetric
// signature) are skipped. The timestamp must be within tolerance of now in
// both directions; tolerance <= 0 means 5 minutes.
//
// secret is "whsec_" followed by the base64 key, as senders display it; the
// prefix is optional. The error for a malformed secret is for the operator
// and does not quote the secret.
func StandardWebhooks(secret string, tolerance time.Duration) (Verifier, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return nil, errors.New("hookverify: Standard Webhooks secret is not base64 after its optional whsec_ prefix")
	}
	if len(key) == 0 {
		return nil, errors.New("hookverify: Standard Webhooks secret is empty")
	}
	return standardVerifier{key: key, tolerance: orDefault(tolerance)}, nil
}

type standardVerifier struct {
	key       []byte
	tolerance time.Duration
}

var _ Verifier = standardVerifier{}

func (v standardVerifier) Verify(h http.Header, body []byte, now time.Time) error {
	id := h.Get("webhook-id")
	if id == "" {
		return reject("missing webhook-id header")
	}
	rawTS := h.Get("webhook-timestamp")
	if rawTS == "" {
		return reject("missing webhook-timestamp header")
	}
	ts, err := parseUnix(rawTS)
	if err != nil {
		return err
	}
	list := h.Get("webhook-signature")
	if list == "" {
		return reject("missing webhook-signature header")
	}
	want := sum(v.key, []byte(id), []byte("."), []byte(rawTS), []byte("."), body)
	seen, matched := false, false
	for entry := range strings.FieldsSeq(list) {
		version, encoded, _ := strings.Cut(entry, ",")
		if version != "v1" {
			continue
		}
		seen = true
		sig, err := base64.StdEncoding.DecodeString(encoded)
		if err == nil && hmac.Equal(sig, want) {
			matched = true
			break
		}
	}
	if !seen {
		return reject("no v1 signature")
	}
	if !matched {
		return reject("signature does not match")
	}
	// As for Stripe: age is judged only once the request is known genuine.
	return checkAge(ts, now, v.tolerance)
}
