// Package hookverify checks the signatures that webhook senders put on their
// requests.
//
// Each sender convention is one Verifier. Failures are *Error values whose
// Reason is written for the sender: it says what to fix but never carries a
// secret or the signature we expected, so it can go back in a 401.
package hookverify

import (
	"fmt"
	"net/http"
	"time"
)

// Verifier checks one request. body is the raw request body, exactly as
// received, because signatures cover bytes, not parsed JSON. now is passed
// in rather than read from the clock so tests can pin it and so one request
// is judged against one instant.
type Verifier interface {
	Verify(h http.Header, body []byte, now time.Time) error
}

// Error is a verification failure. Its Reason is safe to send back to the
// sender, who needs to know why a delivery was refused to fix it.
type Error struct{ Reason string }

// Error returns the Reason alone so a handler can write it as the response
// body without stripping a prefix.
func (e *Error) Error() string { return e.Reason }

// reject builds a failure; the format and arguments must never include a
// secret or an expected signature.
func reject(format string, args ...any) error {
	return &Error{Reason: fmt.Sprintf(format, args...)}
}
