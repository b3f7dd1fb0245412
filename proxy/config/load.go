package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// DiagnosticsError is a config that cannot be used: every diagnostic found,
// with the sources to quote from.
type DiagnosticsError struct {
	Diags hcl.Diagnostics
	Files map[string]*hcl.File
}

// Error renders every diagnostic as "file:line:col: error: summary",
// then the source line with the range underlined, then the detail.
func (e *DiagnosticsError) Error() string {
	var b strings.Builder
	for i, d := range e.Diags {
		if i > 0 {
			b.WriteByte('\n')
		}
		severity := "error"
		if d.Severity == hcl.DiagWarning {
			severity = "warning"
		}
		if d.Subject != nil {
			fmt.Fprintf(&b, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		fmt.Fprintf(&b, "%s: %s\n", severity, d.Summary)
		if d.Subject != nil {
			if f := e.Files[d.Subject.Filename]; f != nil {
				writeSnippet(&b, f.Bytes, *d.Subject)
			}
		}
		if d.Detail != "" {
			fmt.Fprintf(&b, "  %s\n", d.Detail)
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// writeSnippet writes the source line rng starts on and a caret line under
// the part of it rng covers.
func writeSnippet(b *strings.Builder, src []byte, rng hcl.Range) {
	lines := strings.Split(string(src), "\n")
	if rng.Start.Line < 1 || rng.Start.Line > len(lines) {
		return
	}
	line := strings.TrimRight(lines[rng.Start.Line-1], "\r")
	fmt.Fprintf(b, "  %s\n", strings.ReplaceAll(line, "\t", " "))
	width := 1
	if rng.End.Line == rng.Start.Line && rng.End.Column > rng.Start.Column {
		width = rng.End.Column - rng.Start.Column
	}
	fmt.Fprintf(b, "  %s%s\n", strings.Repeat(" ", rng.Start.Column-1), strings.Repeat("^", width))
}

// Load reads and checks the config file at path.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(src, path)
}

// Parse checks src, the text of the config file named filename. Relative
// paths in file() resolve against filename's directory.
func Parse(src []byte, filename string) (*Config, error) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, &DiagnosticsError{Diags: diags, Files: p.Files()}
	}
	cfg, more := decode(f.Body, filepath.Dir(filename), src)
	diags = append(diags, more...)
	if diags.HasErrors() {
		sortByPosition(diags)
		return nil, &DiagnosticsError{Diags: diags, Files: p.Files()}
	}
	return cfg, nil
}

// sortByPosition orders diagnostics as they appear in the file, so the
// first one printed is the first one to fix.
func sortByPosition(diags hcl.Diagnostics) {
	slices.SortStableFunc(diags, func(a, b *hcl.Diagnostic) int {
		if a.Subject == nil || b.Subject == nil {
			return 0
		}
		if c := strings.Compare(a.Subject.Filename, b.Subject.Filename); c != 0 {
			return c
		}
		return a.Subject.Start.Byte - b.Subject.Start.Byte
	})
}
