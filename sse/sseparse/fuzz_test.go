package sseparse

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse checks that no input panics, that how the input is split into
// reads never changes the result, and that every event is valid UTF-8 with
// an id fit for a Last-Event-ID header. The small limit lets the fuzzer
// reach ErrTooLong too.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 64
		whole := parseAll(bytes.NewReader(in), limit)
		oneByte := parseAll(iotest.OneByteReader(bytes.NewReader(in)), limit)
		if whole.Err != io.EOF && !errors.Is(whole.Err, ErrTooLong) {
			t.Fatalf("unexpected error %v", whole.Err)
		}
		sameErr := cmp.Comparer(func(a, b error) bool { return a.Error() == b.Error() })
		if diff := cmp.Diff(whole, oneByte, sameErr); diff != "" {
			t.Fatalf("whole vs one byte at a time (-whole +one-byte):\n%s", diff)
		}
		for _, ev := range whole.Events {
			if !utf8.ValidString(ev.Type) || !utf8.ValidString(ev.Data) || !utf8.ValidString(ev.LastEventID) {
				t.Errorf("invalid UTF-8 in %+q", ev)
			}
			if strings.IndexByte(ev.LastEventID, 0) >= 0 {
				t.Errorf("NUL in id of %+q", ev)
			}
		}
		if !utf8.ValidString(whole.LastEventID) || strings.IndexByte(whole.LastEventID, 0) >= 0 {
			t.Errorf("LastEventID() = %+q", whole.LastEventID)
		}
	})
}
