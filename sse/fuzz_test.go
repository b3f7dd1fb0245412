package sse

import (
	"strings"
	"testing"

	gosse "github.com/tmaxmax/go-sse"
)

// FuzzRoundTrip holds the encoder's promise: any id, name and data is either
// refused when the event is built, or reads back unchanged through an
// independent parser (data with its line ends normalized to LF, which is
// what every SSE client delivers).
func FuzzRoundTrip(f *testing.F) {
	f.Add("1", "quote", "hello")
	f.Add("", "", "")
	f.Add("a b", "", "line\r\nline\rline\n")
	f.Add("id", "e", " leading space")
	f.Add("\ufeffid", "\ufeff", "\ufeffdata")
	f.Add("x", ":", "data: injected\n\nevent: x")
	f.Fuzz(func(t *testing.T, id, name, data string) {
		e, err := NewEvent(name, data)
		if err != nil {
			return
		}
		if e, err = e.WithID(id); err != nil {
			return
		}
		var got []gosse.Event
		cfg := &gosse.ReadConfig{MaxEventSize: 1 << 20}
		for ev, err := range gosse.Read(strings.NewReader(string(e.Encode())), cfg) {
			if err != nil {
				t.Fatalf("parse %q: %v", e.Encode(), err)
			}
			got = append(got, ev)
		}
		want := gosse.Event{LastEventID: id, Type: name, Data: normalizeLineEnds(data)}
		if len(got) != 1 || got[0] != want {
			t.Fatalf("encoded %q read back as %+v, want [%+v]", e.Encode(), got, want)
		}
	})
}

func normalizeLineEnds(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}
