package sources

import (
	"strings"
	"testing"
)

// FuzzResolvedSubject holds what the edge relies on before a subject
// reaches NATS: a path value that ValidToken takes resolves into a valid
// subject within the bounds, holding the value as one token byte for byte
// (HCL's NFC normalisation must not turn one value into another's); and
// whatever the value, resolving never panics, and a subject it yields is
// valid and within the bounds.
func FuzzResolvedSubject(f *testing.F) {
	f.Add("AAPL")
	f.Add("jose\u0301")
	f.Add("jos\u00e9")
	f.Add(strings.Repeat("A", MaxTokenLength))
	f.Add(strings.Repeat("A", MaxTokenLength+1))
	f.Add("a.b")
	f.Add("*")
	f.Add(">")
	f.Add("a\x00b")
	f.Add("\xff")
	src, diags := decodeBlock(f, `subject = "stocks.${path.symbol}.quotes"`)
	if diags.HasErrors() {
		f.Fatal(diags)
	}
	f.Fuzz(func(t *testing.T, value string) {
		subject, err := src.Subject(streamVars(value))
		if err != nil {
			return
		}
		if err := validSubject(subject); err != nil {
			t.Fatalf("resolved %q: %v", subject, err)
		}
		if !ValidToken(value) {
			return // the edge refuses it before resolving (400)
		}
		want := "stocks." + value + ".quotes"
		if subject != want {
			t.Fatalf("value %q resolved to %q, want %q", value, subject, want)
		}
	})
}
