package hookverify_test

import (
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/ssegate/ssegate/sources/hookverify"
)

// header builds an http.Header from name/value pairs, canonicalizing names
// the way net/http does for incoming requests.
func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// longToken finds anything that looks like a key or signature (a long run of
// hex or base64 characters); reasons are prose and never contain one.
var longToken = regexp.MustCompile(`[A-Za-z0-9+/=]{20,}`)

// wantReason checks that err is an *Error with exactly reason, and that the
// text leaks none of the secrets (secrets, expected signatures).
func wantReason(t *testing.T, err error, reason string, secrets ...string) {
	t.Helper()
	var e *hookverify.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *hookverify.Error %q", err, err, reason)
	}
	if e.Reason != reason {
		t.Errorf("reason = %q, want %q", e.Reason, reason)
	}
	if err.Error() != e.Reason {
		t.Errorf("Error() = %q, want the reason %q", err.Error(), e.Reason)
	}
	assertSafe(t, err.Error(), secrets...)
}

func assertSafe(t *testing.T, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("error text %q contains secret material %q", text, s)
		}
	}
	if m := longToken.FindString(text); m != "" {
		t.Errorf("error text %q contains a key-like run %q", text, m)
	}
}
