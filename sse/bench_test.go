package sse

import (
	"strings"
	"testing"
)

func BenchmarkEncode(b *testing.B) {
	cases := []struct {
		name string
		data string
	}{
		{"100B", strings.Repeat("x", 100)},
		{"1KiB-multiline", strings.Repeat(strings.Repeat("y", 63)+"\n", 16)},
	}
	for _, c := range cases {
		e, err := NewEvent("quote", c.data)
		if err != nil {
			b.Fatal(err)
		}
		if e, err = e.WithID("mi3k2f8a-123456"); err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.data)))
			for b.Loop() {
				_ = e.Encode()
			}
		})
	}
}
