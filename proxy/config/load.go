package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
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

// Problem is one diagnostic, for a log line of its own.
type Problem struct {
	At      string // file:line:col, or "" for the config as a whole
	Summary string
	Detail  string
}

// Problems lists the diagnostics one by one, in the order Error prints
// them; a log line each reads better than one holding escaped newlines.
func (e *DiagnosticsError) Problems() []Problem {
	ps := make([]Problem, len(e.Diags))
	for i, d := range e.Diags {
		ps[i] = Problem{Summary: d.Summary, Detail: d.Detail}
		if d.Subject != nil {
			ps[i].At = fmt.Sprintf("%s:%d:%d", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
	}
	return ps
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

// Bounds of a config file. HCL's parser recurses once per nesting level,
// and 100,000 nested brackets overflowed the stack and killed the process
// on a reload; no real config comes near either bound.
const (
	MaxConfigSize    = 4 << 20
	MaxNestingLevels = 100
)

// Load reads and checks the config file at path, which must be a regular
// file (a FIFO would block the reload that reads it, a device never end)
// of at most MaxConfigSize bytes.
func Load(path string) (*Config, error) {
	src, err := readRegular(path, MaxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(src, path)
}

// readRegular reads the regular file at path, refusing it past limit bytes.
func readRegular(path string, limit int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// Parse checks src, the text of the config file named filename. Relative
// paths in file() resolve against filename's directory.
func Parse(src []byte, filename string) (*Config, error) {
	p := hclparse.NewParser()
	if d := checkShape(src, filename); d != nil {
		return nil, &DiagnosticsError{Diags: hcl.Diagnostics{d}, Files: map[string]*hcl.File{filename: {Bytes: src}}}
	}
	f, diags := p.ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, &DiagnosticsError{Diags: diags, Files: p.Files()}
	}
	cfg, more := decode(f.Body, filepath.Dir(filename), src)
	diags = append(diags, more...)
	if diags.HasErrors() {
		hideFileContents(diags, f.Body)
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

// checkShape refuses, before the parser sees it, a text too large or
// nested too deep to parse safely. Brackets are counted wherever they
// are, in strings too, so the count can only be too high: a real config
// stays far below the bound either way.
func checkShape(src []byte, filename string) *hcl.Diagnostic {
	if len(src) > MaxConfigSize {
		return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Config too large",
			Detail: fmt.Sprintf("%s is %d bytes; a config may have at most %d.", filename, len(src), MaxConfigSize)}
	}
	depth, pos := 0, hcl.Pos{Line: 1, Column: 1}
	for i, c := range src {
		switch c {
		case '(', '[', '{':
			depth++
			if depth > MaxNestingLevels {
				at := hcl.Pos{Line: pos.Line, Column: pos.Column, Byte: i}
				return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Nested too deep",
					Detail:  fmt.Sprintf("Brackets here are nested more than %d levels deep; flatten the expression.", MaxNestingLevels),
					Subject: &hcl.Range{Filename: filename, Start: at, End: hcl.Pos{Line: at.Line, Column: at.Column + 1, Byte: i + 1}}}
			}
		case ')', ']', '}':
			depth = max(depth-1, 0)
		}
		if c == '\n' {
			pos.Line, pos.Column = pos.Line+1, 1
		} else if c < 0x80 || c >= 0xc0 {
			pos.Column++ // a column per character, not per byte
		}
	}
	return nil
}

// hideFileContents keeps what file() read out of the diagnostics about
// the expressions that read it: `listen = file("/etc/shadow")` must not
// print the file, on the terminal or in the log of a refused reload. A
// diagnostic about the call itself (the file is missing) stays as it is:
// it names the path, not the contents.
func hideFileContents(diags hcl.Diagnostics, body hcl.Body) {
	var calls []hcl.Range
	if b, ok := body.(*hclsyntax.Body); ok {
		_ = hclsyntax.VisitAll(b, func(n hclsyntax.Node) hcl.Diagnostics {
			if c, ok := n.(*hclsyntax.FunctionCallExpr); ok && c.Name == "file" {
				calls = append(calls, c.Range())
			}
			return nil
		})
	}
	for _, d := range diags {
		if d.Subject == nil || d.Summary == "Error in function call" || d.Summary == "Invalid function argument" {
			continue
		}
		for _, c := range calls {
			if d.Subject.Overlaps(c) {
				// Any part of the detail may quote the value.
				d.Detail = "The value comes from file(), so it is not shown here; check what the file holds."
				d.Expression, d.EvalContext = nil, nil
				break
			}
		}
	}
}
