package sseparse

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

// BenchmarkParse parses a stream of 1000 events of 100 bytes each, with an
// id, a type and one data line, the shape of a busy upstream's feed.
func BenchmarkParse(b *testing.B) {
	const events = 1000
	var in bytes.Buffer
	for i := range events {
		head := fmt.Sprintf("id: %d\nevent: tick\ndata: ", i)
		in.WriteString(head + strings.Repeat("x", 100-len(head)-2) + "\n\n")
	}
	if in.Len() != events*100 {
		b.Fatalf("stream is %d bytes, want %d", in.Len(), events*100)
	}
	b.ReportAllocs()
	b.SetBytes(int64(in.Len()))
	for b.Loop() {
		r := NewReader(bytes.NewReader(in.Bytes()), 0)
		n := 0
		for {
			if _, err := r.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != events {
			b.Fatalf("got %d events, want %d", n, events)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
}
