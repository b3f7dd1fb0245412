package hookverify_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ssegate/ssegate/sources/hookverify"
)

// Published by GitHub, "Validating webhook deliveries", section "Testing the
// webhook payload validation"
// (https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries).
// Also reproduced with:
//
//	printf '%s' 'Hello, World!' | openssl dgst -sha256 -hmac "It's a Secret to Everybody"
const (
	ghSecret = "It's a Secret to Everybody"
	ghBody   = "Hello, World!"
	ghSig    = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)

func TestHMACGitHub(t *testing.T) {
	t.Parallel()
	v := hookverify.HMAC([]byte(ghSecret), "X-Hub-Signature-256", "sha256=")
	now := time.Unix(1700000000, 0)
	tests := []struct {
		name   string
		secret string
		h      []string
		body   string
		reason string // "" means it must pass
	}{
		{name: "valid", h: []string{"X-Hub-Signature-256", "sha256=" + ghSig}, body: ghBody},
		{name: "valid uppercase hex", h: []string{"X-Hub-Signature-256", "sha256=" + strings.ToUpper(ghSig)}, body: ghBody},
		{name: "tampered body", h: []string{"X-Hub-Signature-256", "sha256=" + ghSig}, body: "Hello, World?", reason: "signature does not match"},
		{name: "missing header", body: ghBody, reason: "missing X-Hub-Signature-256 header"},
		{name: "empty header", h: []string{"X-Hub-Signature-256", ""}, body: ghBody, reason: "missing X-Hub-Signature-256 header"},
		{name: "sha1 header only", h: []string{"X-Hub-Signature", "sha1=0123"}, body: ghBody, reason: "missing X-Hub-Signature-256 header"},
		{name: "wrong prefix", h: []string{"X-Hub-Signature-256", "sha1=" + ghSig}, body: ghBody, reason: `signature does not start with "sha256="`},
		{name: "no prefix", h: []string{"X-Hub-Signature-256", ghSig}, body: ghBody, reason: `signature does not start with "sha256="`},
		{name: "not hex", h: []string{"X-Hub-Signature-256", "sha256=zz" + ghSig[2:]}, body: ghBody, reason: "signature is not hex"},
		{name: "odd length", h: []string{"X-Hub-Signature-256", "sha256=" + ghSig[1:]}, body: ghBody, reason: "signature is not hex"},
		{name: "truncated", h: []string{"X-Hub-Signature-256", "sha256=" + ghSig[:32]}, body: ghBody, reason: "signature does not match"},
		{name: "empty signature", h: []string{"X-Hub-Signature-256", "sha256="}, body: ghBody, reason: "signature does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Verify(header(tt.h...), []byte(tt.body), now)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantReason(t, err, tt.reason, ghSecret, ghSig)
		})
	}
}

func TestHMACWrongSecret(t *testing.T) {
	t.Parallel()
	v := hookverify.HMAC([]byte("It's a Secret to Nobody"), "X-Hub-Signature-256", "sha256=")
	err := v.Verify(header("X-Hub-Signature-256", "sha256="+ghSig), []byte(ghBody), time.Now())
	wantReason(t, err, "signature does not match", "It's a Secret to Nobody", ghSig)
}

// The secret is copied, so a caller reusing its buffer cannot change it.
func TestHMACCopiesSecret(t *testing.T) {
	t.Parallel()
	secret := []byte(ghSecret)
	v := hookverify.HMAC(secret, "X-Hub-Signature-256", "sha256=")
	copy(secret, "xxxx")
	if err := v.Verify(header("X-Hub-Signature-256", "sha256="+ghSig), []byte(ghBody), time.Now()); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

// A sender with its own header and no prefix. No published vector; computed
// once with:
//
//	printf '%s' 'ping' | openssl dgst -sha256 -hmac 'hunter2'
func TestHMACNoPrefix(t *testing.T) {
	t.Parallel()
	const sig = "f023898fbdfd1319e879bfc44ec57ec28049df57023338df7c5b2bec785baed4"
	v := hookverify.HMAC([]byte("hunter2"), "X-Signature", "")
	if err := v.Verify(header("X-Signature", sig), []byte("ping"), time.Now()); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	err := v.Verify(header("X-Signature", "sha256="+sig), []byte("ping"), time.Now())
	wantReason(t, err, "signature is not hex", "hunter2", sig)
	err = v.Verify(header("X-Signature", sig), []byte("pong"), time.Now())
	wantReason(t, err, "signature does not match", "hunter2", sig)
}
