package hookverify_test

import (
	"testing"
	"time"

	"github.com/ssegate/ssegate/sources/hookverify"
)

// Stripe publishes no fixed vector (its libraries sign at test time), so
// these were computed once with:
//
//	printf '%s' '1700000000.{"id":"evt_test_webhook","object":"event"}' | openssl dgst -sha256 -hmac 'whsec_test_secret'
//	printf '%s' '1700000000.{"id":"evt_test_webhook","object":"event"}' | openssl dgst -sha256 -hmac 'whsec_other_secret'
const (
	stripeSecret   = "whsec_test_secret"
	stripeTS       = 1700000000
	stripeBody     = `{"id":"evt_test_webhook","object":"event"}`
	stripeSig      = "d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990"
	stripeOtherSig = "6515ce04fde11c3c71436ee3c02aff501075a9f7d68e269fd397405848335f68"
)

func TestStripe(t *testing.T) {
	t.Parallel()
	v := hookverify.Stripe([]byte(stripeSecret), 5*time.Minute)
	signed := time.Unix(stripeTS, 0)
	valid := "t=1700000000,v1=" + stripeSig
	tests := []struct {
		name   string
		value  string // Stripe-Signature; "" leaves it out
		body   string
		now    time.Time
		reason string // "" means it must pass
	}{
		{name: "valid", value: valid, body: stripeBody, now: signed},
		{name: "with v0", value: valid + ",v0=" + stripeOtherSig, body: stripeBody, now: signed},
		{name: "second v1 matches", value: "t=1700000000,v1=" + stripeOtherSig + ",v1=" + stripeSig, body: stripeBody, now: signed},
		{name: "non-hex v1 then match", value: "t=1700000000,v1=nothex,v1=" + stripeSig, body: stripeBody, now: signed},
		{name: "signature first", value: "v1=" + stripeSig + ",t=1700000000", body: stripeBody, now: signed},
		{name: "just old enough", value: valid, body: stripeBody, now: signed.Add(5 * time.Minute)},
		{name: "just old enough, subsecond", value: valid, body: stripeBody, now: signed.Add(5*time.Minute + 999*time.Millisecond)},
		{name: "just early enough", value: valid, body: stripeBody, now: signed.Add(-5 * time.Minute)},

		{name: "expired", value: valid, body: stripeBody, now: signed.Add(12 * time.Minute), reason: "timestamp is 12m0s old, tolerance is 5m0s"},
		{name: "one second late", value: valid, body: stripeBody, now: signed.Add(5*time.Minute + time.Second), reason: "timestamp is 5m1s old, tolerance is 5m0s"},
		{name: "future", value: valid, body: stripeBody, now: signed.Add(-5*time.Minute - time.Second), reason: "timestamp is in the future by 5m1s, tolerance is 5m0s"},
		{name: "tampered body", value: valid, body: stripeBody + " ", now: signed, reason: "signature does not match"},
		{name: "tampered timestamp", value: "t=1700000001,v1=" + stripeSig, body: stripeBody, now: signed, reason: "signature does not match"},
		{name: "only other secret", value: "t=1700000000,v1=" + stripeOtherSig, body: stripeBody, now: signed, reason: "signature does not match"},
		{name: "missing header", body: stripeBody, now: signed, reason: "missing Stripe-Signature header"},
		{name: "no timestamp", value: "v1=" + stripeSig, body: stripeBody, now: signed, reason: "Stripe-Signature header has no timestamp"},
		{name: "timestamp not a number", value: "t=soon,v1=" + stripeSig, body: stripeBody, now: signed, reason: "timestamp is not unix seconds"},
		{name: "negative timestamp", value: "t=-1,v1=" + stripeSig, body: stripeBody, now: signed, reason: "timestamp is not unix seconds"},
		{name: "huge timestamp", value: "t=9223372036854775807,v1=" + stripeSig, body: stripeBody, now: signed, reason: "timestamp is not unix seconds"},
		{name: "only v0", value: "t=1700000000,v0=" + stripeSig, body: stripeBody, now: signed, reason: "no v1 signature"},
		{name: "not key=value", value: "t=1700000000," + stripeSig, body: stripeBody, now: signed, reason: "Stripe-Signature header is not a list of key=value pairs"},
		{name: "GitHub style", value: "sha256=" + stripeSig, body: stripeBody, now: signed, reason: "Stripe-Signature header has no timestamp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := header()
			if tt.value != "" {
				h.Set("Stripe-Signature", tt.value)
			}
			err := v.Verify(h, []byte(tt.body), tt.now)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantReason(t, err, tt.reason, stripeSecret, stripeSig)
		})
	}
}

func TestStripeWrongSecret(t *testing.T) {
	t.Parallel()
	v := hookverify.Stripe([]byte("whsec_other_secret"), 0)
	err := v.Verify(header("Stripe-Signature", "t=1700000000,v1="+stripeSig), []byte(stripeBody), time.Unix(stripeTS, 0))
	wantReason(t, err, "signature does not match", "whsec_other_secret", stripeOtherSig, stripeSig)
}

func TestStripeDefaultTolerance(t *testing.T) {
	t.Parallel()
	for _, tol := range []time.Duration{0, -time.Second} {
		v := hookverify.Stripe([]byte(stripeSecret), tol)
		h := header("Stripe-Signature", "t=1700000000,v1="+stripeSig)
		if err := v.Verify(h, []byte(stripeBody), time.Unix(stripeTS+300, 0)); err != nil {
			t.Errorf("tolerance %v, 5m old: %v", tol, err)
		}
		err := v.Verify(h, []byte(stripeBody), time.Unix(stripeTS+301, 0))
		wantReason(t, err, "timestamp is 5m1s old, tolerance is 5m0s", stripeSecret, stripeSig)
	}
}
