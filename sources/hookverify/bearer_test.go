package hookverify_test

import (
	"testing"
	"time"

	"github.com/ssegate/ssegate/sources/hookverify"
)

func TestBearer(t *testing.T) {
	t.Parallel()
	const current, previous = "tok_current_0123456789", "tok_previous"
	v := hookverify.Bearer([]string{current, previous})
	tests := []struct {
		name   string
		auth   string // "" leaves the header out
		reason string // "" means it must pass
	}{
		{name: "first token", auth: "Bearer " + current},
		{name: "second token", auth: "Bearer " + previous},
		{name: "scheme case-insensitive", auth: "bEARER " + current},
		{name: "extra spaces", auth: "Bearer   " + current + " "},
		{name: "wrong token", auth: "Bearer tok_wrong", reason: "bearer token not accepted"},
		{name: "prefix of token", auth: "Bearer tok_current", reason: "bearer token not accepted"},
		{name: "token plus more", auth: "Bearer " + current + "x", reason: "bearer token not accepted"},
		{name: "missing header", reason: "missing Authorization bearer token"},
		{name: "scheme only", auth: "Bearer", reason: "missing Authorization bearer token"},
		{name: "scheme and space", auth: "Bearer  ", reason: "missing Authorization bearer token"},
		{name: "basic scheme", auth: "Basic dXNlcjpwYXNz", reason: "Authorization scheme is not Bearer"},
		{name: "token without scheme", auth: current, reason: "Authorization scheme is not Bearer"},
		{name: "Bearer as a prefix", auth: "Bearertok " + current, reason: "Authorization scheme is not Bearer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := header()
			if tt.auth != "" {
				h.Set("Authorization", tt.auth)
			}
			err := v.Verify(h, nil, time.Now())
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantReason(t, err, tt.reason, current, previous)
		})
	}
}

func TestBearerNoTokens(t *testing.T) {
	t.Parallel()
	for _, tokens := range [][]string{nil, {""}} {
		v := hookverify.Bearer(tokens)
		for _, auth := range []string{"Bearer ", "Bearer x"} {
			if v.Verify(header("Authorization", auth), nil, time.Now()) == nil {
				t.Errorf("Bearer(%q) accepted %q", tokens, auth)
			}
		}
	}
}
