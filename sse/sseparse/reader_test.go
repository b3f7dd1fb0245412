package sseparse

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// result is everything a stream leaves behind once Next stops.
type result struct {
	Events      []MessageEvent
	LastEventID string
	Retry       time.Duration
	RetrySet    bool
	Err         error
}

// parseAll reads r until Next fails.
func parseAll(r io.Reader, maxEvent int) result {
	p := NewReader(r, maxEvent)
	var res result
	for {
		ev, err := p.Next()
		if err != nil {
			res.Err = err
			break
		}
		res.Events = append(res.Events, ev)
	}
	res.LastEventID = p.LastEventID()
	res.Retry, res.RetrySet = p.Retry()
	return res
}

// specCase is one entry of testdata/spec/cases.json. Input is UTF-8 text,
// or with Latin1 set one byte per code point (U+0000 to U+00FF), which is
// how a case spells invalid UTF-8 in JSON.
type specCase struct {
	Name   string
	Input  string
	Latin1 bool
	Events []struct {
		Type, Data, ID string
	}
	LastEventID string
	RetryMs     *int64
}

func (c specCase) bytes(t *testing.T) []byte {
	if !c.Latin1 {
		return []byte(c.Input)
	}
	b := make([]byte, 0, len(c.Input))
	for _, r := range c.Input {
		if r > 0xFF {
			t.Fatalf("latin1 input has %U", r)
		}
		b = append(b, byte(r))
	}
	return b
}

func (c specCase) want() result {
	res := result{LastEventID: c.LastEventID, Err: io.EOF}
	for _, e := range c.Events {
		res.Events = append(res.Events, MessageEvent{Type: e.Type, Data: e.Data, LastEventID: e.ID})
	}
	if c.RetryMs != nil {
		res.Retry, res.RetrySet = time.Duration(*c.RetryMs)*time.Millisecond, true
	}
	return res
}

func loadSpecCases(t *testing.T) []specCase {
	raw, err := os.ReadFile("testdata/spec/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []specCase
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cases); err != nil {
		t.Fatalf("testdata/spec/cases.json: %v", err)
	}
	return cases
}

// readers serves in whole, a byte at a time, with EOF on the last data, and
// split in two at every position, so CR|LF and multibyte sequences fall on
// every read boundary.
func readers(in []byte) map[string]func() io.Reader {
	m := map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(in) },
		"one-byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(in)) },
		"data-err": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(in)) },
	}
	for k := 1; k < len(in); k++ {
		m[fmt.Sprintf("split-%d", k)] = func() io.Reader {
			return io.MultiReader(bytes.NewReader(in[:k]), bytes.NewReader(in[k:]))
		}
	}
	return m
}

func TestSpecCases(t *testing.T) {
	t.Parallel()
	errIs := cmp.Comparer(func(a, b error) bool { return errors.Is(a, b) || errors.Is(b, a) })
	for _, c := range loadSpecCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			in, want := c.bytes(t), c.want()
			for name, r := range readers(in) {
				if diff := cmp.Diff(want, parseAll(r(), 0), errIs); diff != "" {
					t.Errorf("%s: %q (-want +got):\n%s", name, in, diff)
				}
			}
		})
	}
}

// TestLongStream crosses the read buffer many times with every kind of line
// end, where the short spec cases never fill it.
func TestLongStream(t *testing.T) {
	t.Parallel()
	ends := []string{"\n", "\r", "\r\n"}
	var in bytes.Buffer
	var want []MessageEvent
	for i := range 3000 {
		eol, blank := ends[i%len(ends)], ends[i/3%len(ends)]
		if eol == "\r" && blank == "\n" {
			blank = "\r\n" // a lone LF would complete the CR into CRLF
		}
		data := string(bytes.Repeat([]byte{'a' + byte(i%26)}, i%97))
		fmt.Fprintf(&in, "id: %d%sdata: %s%sdata: %d%s%s", i, eol, data, eol, i, eol, blank)
		want = append(want, MessageEvent{Type: "message", Data: fmt.Sprintf("%s\n%d", data, i), LastEventID: fmt.Sprint(i)})
	}
	for name, r := range map[string]io.Reader{
		"whole":    bytes.NewReader(in.Bytes()),
		"half":     iotest.HalfReader(bytes.NewReader(in.Bytes())),
		"one-byte": iotest.OneByteReader(bytes.NewReader(in.Bytes())),
	} {
		got := parseAll(r, 0)
		if got.Err != io.EOF {
			t.Fatalf("%s: err = %v, want io.EOF", name, got.Err)
		}
		if diff := cmp.Diff(want, got.Events); diff != "" {
			t.Errorf("%s: events (-want +got):\n%s", name, diff)
		}
	}
}

// stopReader serves its data in one read, then fails the test if read again.
type stopReader struct {
	t    *testing.T
	data []byte
}

func (s *stopReader) Read(p []byte) (int, error) {
	if s.data == nil {
		s.t.Error("read past the end of the event")
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, s.data)
	s.data = nil
	return n, nil
}

// TestNoReadAhead checks an event is returned as soon as its blank line is
// in: a live upstream may send nothing more for a long time.
func TestNoReadAhead(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"data: x\n\n", "data: x\r\r", "data: x\r\n\r\n", "\ufeffdata: x\n\n"} {
		ev, err := NewReader(&stopReader{t: t, data: []byte(in)}, 0).Next()
		if err != nil || ev.Data != "x" {
			t.Errorf("%q: Next() = %+v, %v; want data x", in, ev, err)
		}
	}
}

func TestReadErrorIsWrappedAndSticky(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	r := NewReader(io.MultiReader(bytes.NewReader([]byte("data: a\n\ndata: b\n")), iotest.ErrReader(boom)), 0)
	if ev, err := r.Next(); err != nil || ev.Data != "a" {
		t.Fatalf("Next() = %+v, %v; want data a", ev, err)
	}
	for range 2 {
		_, err := r.Next()
		if !errors.Is(err, boom) || err == boom {
			t.Fatalf("Next() error = %v, want boom wrapped with context", err)
		}
	}
}

func TestEOFIsSticky(t *testing.T) {
	t.Parallel()
	r := NewReader(bytes.NewReader(nil), 0)
	for range 2 {
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("Next() error = %v, want io.EOF", err)
		}
	}
}

// A reconnecting client keeps its last event ID: events without an id
// field carry it.
func TestResume(t *testing.T) {
	t.Parallel()
	r := NewReader(strings.NewReader("data: a\n\nid: 9\ndata: b\n\ndata: c\n\n"), 0)
	r.Resume("5")
	var ids []string
	for {
		ev, err := r.Next()
		if err != nil {
			break
		}
		ids = append(ids, ev.LastEventID)
	}
	if got := strings.Join(ids, ","); got != "5,9,9" {
		t.Errorf("ids %s, want 5,9,9", got)
	}
}

// Comments are reported as read, between the events they stand among, and
// change nothing else.
func TestOnComment(t *testing.T) {
	t.Parallel()
	var seen []string
	r := NewReader(strings.NewReader(": first\ndata: a\n\n:keepalive\n:\ndata: b\n\n"), 0)
	r.OnComment(func(text string) { seen = append(seen, "comment"+text) })
	for {
		ev, err := r.Next()
		if err != nil {
			break
		}
		seen = append(seen, "event "+ev.Data)
	}
	want := []string{"comment first", "event a", "commentkeepalive", "comment", "event b"}
	if !slices.Equal(seen, want) {
		t.Fatalf("seen %q, want %q", seen, want)
	}
}
