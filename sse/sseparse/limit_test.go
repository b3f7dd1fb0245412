package sseparse

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestErrTooLong(t *testing.T) {
	t.Parallel()
	const limit = 16
	for _, tc := range []struct {
		name, in string
		events   int // dispatched before the limit is hit
		tooLong  bool
	}{
		{"line at the limit", "data:" + strings.Repeat("x", limit-5) + "\n\n", 1, false},
		{"line over the limit", "data:" + strings.Repeat("x", limit-4) + "\n\n", 0, true},
		{"unterminated line over the limit", "data: x\n\n" + strings.Repeat("x", limit+1), 1, true},
		{"comment over the limit", ":" + strings.Repeat("x", limit) + "\ndata: x\n\n", 0, true},
		{"data at the limit", "data:1234567\ndata:12345678\n\n", 1, false},
		{"data over the limit", "data:1234567\ndata:123456789\n\n", 0, true},
		{"empty data lines count their LF", strings.Repeat("data\n", limit+2) + "\n", 0, true},
		{"limit is per event", strings.Repeat("data:12345678901\n\n", 3), 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for name, r := range map[string]io.Reader{
				"whole":    strings.NewReader(tc.in),
				"one-byte": iotest.OneByteReader(strings.NewReader(tc.in)),
			} {
				got := parseAll(r, limit)
				if len(got.Events) != tc.events {
					t.Errorf("%s: %d events before the error, want %d", name, len(got.Events), tc.events)
				}
				if errors.Is(got.Err, ErrTooLong) != tc.tooLong {
					t.Errorf("%s: err = %v, want ErrTooLong: %v", name, got.Err, tc.tooLong)
				}
			}
		})
	}
}

func TestErrTooLongIsSticky(t *testing.T) {
	t.Parallel()
	r := NewReader(strings.NewReader(strings.Repeat("x", 100)+"\ndata: x\n\n"), 10)
	for range 2 {
		if _, err := r.Next(); !errors.Is(err, ErrTooLong) {
			t.Fatalf("Next() error = %v, want ErrTooLong", err)
		}
	}
}

func TestDefaultLimit(t *testing.T) {
	t.Parallel()
	line := "data:" + strings.Repeat("x", defaultMaxEvent-5) + "\n"
	if got := parseAll(strings.NewReader(line+"\n"), 0); len(got.Events) != 1 || got.Err != io.EOF {
		t.Errorf("event at the default limit: %d events, err %v", len(got.Events), got.Err)
	}
	if got := parseAll(strings.NewReader(line+line+"\n"), -1); !errors.Is(got.Err, ErrTooLong) {
		t.Errorf("event over the default limit: err %v, want ErrTooLong", got.Err)
	}
}
