package hookverify_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ssegate/ssegate/sources/hookverify"
)

// Published in the standard-webhooks repository,
// libraries/go/webhook_test.go, TestWebhookSign
// (github.com/standard-webhooks/standard-webhooks). Also reproduced with:
//
//	printf '%s' 'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}' |
//	  openssl dgst -sha256 -mac HMAC -macopt hexkey:$(printf '%s' MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw | base64 -d | xxd -p -c 256) -binary | base64
const (
	swSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	swKey    = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	swID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	swTS     = 1614265330
	swBody   = `{"test": 2432232314}`
	swSig    = "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	// swWrong is a well-formed signature that does not match, from the same
	// repository's tests.
	swWrong = "Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
)

func TestStandardWebhooks(t *testing.T) {
	t.Parallel()
	v, err := hookverify.StandardWebhooks(swSecret, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	signed := time.Unix(swTS, 0)
	tests := []struct {
		name         string
		id, ts, sigs string // "" leaves the header out
		body         string
		now          time.Time
		reason       string // "" means it must pass
	}{
		{name: "valid", id: swID, ts: "1614265330", sigs: "v1," + swSig, body: swBody, now: signed},
		{name: "second v1 matches", id: swID, ts: "1614265330", sigs: "v1," + swWrong + " v1," + swSig, body: swBody, now: signed},
		{name: "unknown versions skipped", id: swID, ts: "1614265330", sigs: "v1a," + swSig + " v2," + swSig + " v1," + swWrong + "  v1," + swSig, body: swBody, now: signed},
		{name: "just old enough", id: swID, ts: "1614265330", sigs: "v1," + swSig, body: swBody, now: signed.Add(5 * time.Minute)},
		{name: "just early enough", id: swID, ts: "1614265330", sigs: "v1," + swSig, body: swBody, now: signed.Add(-5 * time.Minute)},

		{name: "expired", id: swID, ts: "1614265330", sigs: "v1," + swSig, body: swBody, now: signed.Add(12 * time.Minute), reason: "timestamp is 12m0s old, tolerance is 5m0s"},
		{name: "future", id: swID, ts: "1614265330", sigs: "v1," + swSig, body: swBody, now: signed.Add(-6 * time.Minute), reason: "timestamp is in the future by 6m0s, tolerance is 5m0s"},
		{name: "tampered body", id: swID, ts: "1614265330", sigs: "v1," + swSig, body: `{"test": 2432232315}`, now: signed, reason: "signature does not match"},
		{name: "tampered id", id: swID + "x", ts: "1614265330", sigs: "v1," + swSig, body: swBody, now: signed, reason: "signature does not match"},
		{name: "tampered timestamp", id: swID, ts: "1614265331", sigs: "v1," + swSig, body: swBody, now: signed, reason: "signature does not match"},
		{name: "only wrong v1", id: swID, ts: "1614265330", sigs: "v1," + swWrong, body: swBody, now: signed, reason: "signature does not match"},
		{name: "v1 not base64", id: swID, ts: "1614265330", sigs: "v1,!!!", body: swBody, now: signed, reason: "signature does not match"},
		{name: "only v1a", id: swID, ts: "1614265330", sigs: "v1a," + swSig, body: swBody, now: signed, reason: "no v1 signature"},
		{name: "no comma", id: swID, ts: "1614265330", sigs: "v1" + swSig, body: swBody, now: signed, reason: "no v1 signature"},
		{name: "only spaces", id: swID, ts: "1614265330", sigs: "   ", body: swBody, now: signed, reason: "no v1 signature"},
		{name: "missing id", ts: "1614265330", sigs: "v1," + swSig, body: swBody, now: signed, reason: "missing webhook-id header"},
		{name: "missing timestamp", id: swID, sigs: "v1," + swSig, body: swBody, now: signed, reason: "missing webhook-timestamp header"},
		{name: "missing signature", id: swID, ts: "1614265330", body: swBody, now: signed, reason: "missing webhook-signature header"},
		{name: "timestamp in milliseconds", id: swID, ts: "1614265330000", sigs: "v1," + swSig, body: swBody, now: signed, reason: "timestamp is not unix seconds"},
		{name: "timestamp as date", id: swID, ts: "2021-02-25T15:02:10Z", sigs: "v1," + swSig, body: swBody, now: signed, reason: "timestamp is not unix seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := header()
			for name, value := range map[string]string{"webhook-id": tt.id, "webhook-timestamp": tt.ts, "webhook-signature": tt.sigs} {
				if value != "" {
					h.Set(name, value)
				}
			}
			err := v.Verify(h, []byte(tt.body), tt.now)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantReason(t, err, tt.reason, swKey, swSig)
		})
	}
}

func TestStandardWebhooksSecretForms(t *testing.T) {
	t.Parallel()
	h := header("webhook-id", swID, "webhook-timestamp", "1614265330", "webhook-signature", "v1,"+swSig)
	now := time.Unix(swTS, 0)

	// Without the whsec_ prefix the secret is the bare base64 key.
	v, err := hookverify.StandardWebhooks(swKey, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(h, []byte(swBody), now); err != nil {
		t.Errorf("bare key: %v", err)
	}

	// A different key: base64 of "another key 1234".
	v, err = hookverify.StandardWebhooks("whsec_YW5vdGhlciBrZXkgMTIzNA==", 0)
	if err != nil {
		t.Fatal(err)
	}
	wantReason(t, v.Verify(h, []byte(swBody), now), "signature does not match", "YW5vdGhlciBrZXkgMTIzNA", swSig)
}

func TestStandardWebhooksMalformedSecret(t *testing.T) {
	t.Parallel()
	for _, secret := range []string{"", "whsec_", "whsec_not base64!", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", "secret-" + swKey} {
		v, err := hookverify.StandardWebhooks(secret, 0)
		if err == nil {
			t.Errorf("StandardWebhooks(%q) = %v, want an error", secret, v)
			continue
		}
		if key := strings.TrimPrefix(secret, "whsec_"); key != "" && strings.Contains(err.Error(), key) {
			t.Errorf("error %q quotes the secret", err)
		}
	}
}
