package hookverify_test

import (
	"errors"
	"testing"
	"time"

	"github.com/ssegate/ssegate/sources/hookverify"
)

// FuzzVerify feeds arbitrary header values and bodies to every verifier:
// none may panic, and every failure must be an *Error whose reason leaks no
// secret. sig goes into every signature header so each parser sees it.
func FuzzVerify(f *testing.F) {
	sw, err := hookverify.StandardWebhooks(swSecret, 0)
	if err != nil {
		f.Fatal(err)
	}
	verifiers := map[string]hookverify.Verifier{
		"hmac":     hookverify.HMAC([]byte(ghSecret), "X-Hub-Signature-256", "sha256="),
		"stripe":   hookverify.Stripe([]byte(stripeSecret), 0),
		"standard": sw,
		"bearer":   hookverify.Bearer([]string{"tok_current_0123456789"}),
	}
	now := time.Unix(stripeTS, 0)
	f.Fuzz(func(t *testing.T, sig, ts, id, auth string, body []byte) {
		h := header(
			"X-Hub-Signature-256", sig,
			"Stripe-Signature", sig,
			"webhook-signature", sig,
			"webhook-timestamp", ts,
			"webhook-id", id,
			"Authorization", auth,
		)
		for name, v := range verifiers {
			err := v.Verify(h, body, now)
			if err == nil {
				continue
			}
			var e *hookverify.Error
			if !errors.As(err, &e) || e.Reason == "" {
				t.Fatalf("%s: err = %#v, want *Error with a reason", name, err)
			}
			assertSafe(t, e.Reason, ghSecret, stripeSecret, swKey, "tok_current_0123456789")
		}
		// A secret is configuration, but parsing one must not panic either.
		_, _ = hookverify.StandardWebhooks(id, 0)
	})
}
