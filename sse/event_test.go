package sse

import (
	"errors"
	"strings"
	"testing"
	"time"

	gosse "github.com/tmaxmax/go-sse"
)

func mustEvent(t testing.TB, name, data string) Event {
	t.Helper()
	e, err := NewEvent(name, data)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mustID(t testing.TB, e Event, id string) Event {
	t.Helper()
	e, err := e.WithID(id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEncodeWireBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		event Event
		want  string
	}{
		{"empty data still dispatches", mustEvent(t, "", ""), "data:\n\n"},
		{"plain", mustEvent(t, "", "hello"), "data: hello\n\n"},
		{"named", mustEvent(t, "quote", "1.5"), "event: quote\ndata: 1.5\n\n"},
		{"id", mustID(t, mustEvent(t, "", "x"), "42"), "id: 42\ndata: x\n\n"},
		{"empty id resets", mustID(t, mustEvent(t, "", "x"), ""), "id:\ndata: x\n\n"},
		{"LF", mustEvent(t, "", "a\nb"), "data: a\ndata: b\n\n"},
		{"CRLF", mustEvent(t, "", "a\r\nb"), "data: a\ndata: b\n\n"},
		{"lone CR", mustEvent(t, "", "a\rb"), "data: a\ndata: b\n\n"},
		{"CR then LF are one line end", mustEvent(t, "", "a\r\n\nb"), "data: a\ndata:\ndata: b\n\n"},
		{"LF then CR are two", mustEvent(t, "", "a\n\rb"), "data: a\ndata:\ndata: b\n\n"},
		{"trailing LF keeps empty line", mustEvent(t, "", "a\n"), "data: a\ndata:\n\n"},
		{"leading space survives", mustEvent(t, "", " a"), "data:  a\n\n"},
		{"colon in data", mustEvent(t, "", "a: b"), "data: a: b\n\n"},
		{"UTF-8", mustEvent(t, "ünï", "日本語 ✓"), "event: ünï\ndata: 日本語 ✓\n\n"},
		{"NUL in data", mustEvent(t, "", "a\x00b"), "data: a\x00b\n\n"},
		{"all fields", mustID(t, mustEvent(t, "e", "d"), "i"), "id: i\nevent: e\ndata: d\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tt.event.Encode()); got != tt.want {
				t.Errorf("Encode() = %q, want %q", got, tt.want)
			}
			if got := string(tt.event.AppendTo([]byte("x"))); got != "x"+tt.want {
				t.Errorf("AppendTo() = %q, want %q", got, "x"+tt.want)
			}
		})
	}
}

func TestConstructorsRefuseInjection(t *testing.T) {
	t.Parallel()
	bad := []struct {
		name string
		err  func() error
	}{
		{"LF in name", func() error { _, err := NewEvent("a\nb", ""); return err }},
		{"CR in name", func() error { _, err := NewEvent("a\rb", ""); return err }},
		{"invalid UTF-8 name", func() error { _, err := NewEvent("\xff", ""); return err }},
		{"invalid UTF-8 data", func() error { _, err := NewEvent("", "a\xc3"); return err }},
		{"LF in id", func() error { _, err := Event{}.WithID("1\ndata: x"); return err }},
		{"CR in id", func() error { _, err := Event{}.WithID("1\r"); return err }},
		{"NUL in id", func() error { _, err := Event{}.WithID("1\x002"); return err }},
		{"invalid UTF-8 id", func() error { _, err := Event{}.WithID("\xfe"); return err }},
	}
	for _, tt := range bad {
		if err := tt.err(); !errors.Is(err, ErrInvalidField) {
			t.Errorf("%s: err = %v, want ErrInvalidField", tt.name, err)
		}
	}
}

func TestCommentAndRetryLines(t *testing.T) {
	t.Parallel()
	if got := string(AppendComment(nil, "keepalive")); got != ": keepalive\n" {
		t.Errorf("comment = %q", got)
	}
	if got := string(AppendComment(nil, "")); got != ":\n" {
		t.Errorf("empty comment = %q", got)
	}
	if got := string(AppendComment(nil, "a\r\nb\rc")); got != ": a\n: b\n: c\n" {
		t.Errorf("multi-line comment = %q", got)
	}
	if got := string(AppendRetry(nil, 3*time.Second)); got != "retry: 3000\n" {
		t.Errorf("retry = %q", got)
	}
}

// A stream of retry, comments and events reads back, through a third-party
// parser, as exactly the events, with comments and retry invisible.
func TestStreamReadsBackThroughThirdPartyParser(t *testing.T) {
	t.Parallel()
	var b []byte
	b = AppendRetry(b, time.Second)
	b = AppendComment(b, "hi")
	b = mustID(t, mustEvent(t, "a", "x\ny"), "1").AppendTo(b)
	b = AppendComment(b, "keepalive")
	b = mustEvent(t, "", "z").AppendTo(b)

	var got []gosse.Event
	for ev, err := range gosse.Read(strings.NewReader(string(b)), nil) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
	}
	want := []gosse.Event{{LastEventID: "1", Type: "a", Data: "x\ny"}, {LastEventID: "1", Data: "z"}}
	if len(got) != len(want) {
		t.Fatalf("got %d events %+v, want %+v", len(got), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
