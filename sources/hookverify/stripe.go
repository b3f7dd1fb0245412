package hookverify

import (
	"bytes"
	"crypto/hmac"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

// Stripe verifies Stripe's scheme: "Stripe-Signature: t=<unix>,v1=<hex>,..."
// with HMAC-SHA256 over "<t>.<body>". Stripe sends several v1 entries while a
// secret is being rolled, so any one may match; v0 and other schemes are
// ignored, as Stripe's libraries do, so a forger cannot pick a weaker one.
// The timestamp must be within tolerance of now in both directions;
// tolerance <= 0 means 5 minutes. The secret is used as given, "whsec_"
// prefix included, as Stripe does.
func Stripe(secret []byte, tolerance time.Duration) Verifier {
	return stripeVerifier{secret: bytes.Clone(secret), tolerance: orDefault(tolerance)}
}

// stripeHeader carries Stripe's signature.
const stripeHeader = "Stripe-Signature"

type stripeVerifier struct {
	secret    []byte
	tolerance time.Duration
}

var _ Verifier = stripeVerifier{}

func (v stripeVerifier) Verify(h http.Header, body []byte, now time.Time) error {
	value := h.Get(stripeHeader)
	if value == "" {
		return reject("missing Stripe-Signature header")
	}
	var rawTS string
	var sigs []string
	for item := range strings.SplitSeq(value, ",") {
		key, val, ok := strings.Cut(item, "=")
		if !ok {
			return reject("Stripe-Signature header is not a list of key=value pairs")
		}
		switch key {
		case "t":
			if rawTS == "" {
				rawTS = val
			}
		case "v1":
			sigs = append(sigs, val)
		}
	}
	if rawTS == "" {
		return reject("Stripe-Signature header has no timestamp")
	}
	ts, err := parseUnix(rawTS)
	if err != nil {
		return err
	}
	if len(sigs) == 0 {
		return reject("no v1 signature")
	}
	// The signed text is the timestamp as sent, not as re-formatted.
	want := sum(v.secret, []byte(rawTS), []byte("."), body)
	if !anyHexMatches(sigs, want) {
		return reject("signature does not match")
	}
	// Age is judged only for genuine requests, so a forger learns nothing
	// about our clock and a sender with a skewed clock learns why.
	return checkAge(ts, now, v.tolerance)
}

// anyHexMatches reports whether one of sigs is want in hex. An entry that is
// not hex cannot match, and Stripe's own libraries skip it the same way.
func anyHexMatches(sigs []string, want []byte) bool {
	for _, s := range sigs {
		sig, err := hex.DecodeString(s)
		if err == nil && hmac.Equal(sig, want) {
			return true
		}
	}
	return false
}
