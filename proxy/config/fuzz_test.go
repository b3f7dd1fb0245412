package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse holds that no config text, however malformed or deep, panics
// or hangs the loader, and that every refusal is a DiagnosticsError that
// renders. A reload parses with the same code inside the running proxy.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.hcl")
	seeds = append(seeds, "../../config.example.hcl")
	for _, path := range seeds {
		if src, err := os.ReadFile(path); err == nil {
			f.Add(src)
		}
	}
	f.Add([]byte("x = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["))
	f.Add([]byte(`listen = file("/dev/zero")`))
	f.Add([]byte("route \"/a/{b}\" {\n  source \"nats\" { subject = \"a.${path.b}\" }\n}\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, src []byte) {
		_, err := Parse(src, filepath.Join(dir, "fuzz.hcl"))
		if err == nil {
			return
		}
		var diags *DiagnosticsError
		if !errors.As(err, &diags) {
			t.Fatalf("refused without diagnostics: %v", err)
		}
		_ = err.Error()
		_ = diags.Problems()
	})
}
