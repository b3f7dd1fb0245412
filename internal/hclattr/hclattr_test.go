package hclattr

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

func attrs(t *testing.T, src string) hcl.Attributes {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "t.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	a, diags := f.Body.JustAttributes()
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return a
}

// Each reader takes a good value, leaves its destination alone when the
// attribute is absent, and reports a bad one at the value, worded for the
// attribute.
func TestReaders(t *testing.T) {
	t.Parallel()
	a := attrs(t, `
s     = "x"
n     = 7
bad_n = 0
d     = "1500ms"
short = "1ms"
zero  = "0s"
nodur = "soon"
b     = true
l     = ["a", "b"]
notl  = {k = 1}
`)
	var s string
	var n int
	var d time.Duration
	var b bool
	var l []string
	errs := func(diags hcl.Diagnostics) string {
		t.Helper()
		if !diags.HasErrors() {
			return ""
		}
		if diags[0].Subject.Start.Line < 2 {
			t.Errorf("%s: not at its value: %v", diags[0].Summary, diags[0].Subject)
		}
		return diags[0].Summary + ": " + diags[0].Detail
	}
	for _, c := range []struct {
		diags hcl.Diagnostics
		want  string // what the error says, "" for none
	}{
		{String(a, "s", nil, &s), ""},
		{String(a, "absent", nil, &s), ""},
		{String(a, "l", nil, &s), "l must be a string"},
		{OneOf(a, "s", nil, &s, "x", "y"), ""},
		{OneOf(a, "s", nil, &s, "y", "z"), `"x" is not allowed; use one of ["y" "z"]`},
		{Int(a, "n", nil, &n, 1), ""},
		{Int(a, "bad_n", nil, &n, 1), "bad_n must be a whole number of at least 1"},
		{Duration(a, "d", nil, &d, time.Second, false), ""},
		{Duration(a, "short", nil, &d, time.Second, false), `short = "1ms" is too short; use at least "1s"`},
		{Duration(a, "zero", nil, &d, time.Second, false), "too short"},
		{Duration(a, "short", nil, &d, time.Second, true), `use "0s" to turn it off, or at least "1s"`},
		{Duration(a, "nodur", nil, &d, 0, false), `nodur = "soon" is not a duration`},
		{Bool(a, "b", nil, &b), ""},
		{Bool(a, "s", nil, &b), "s must be true or false"},
		{Strings(a, "l", nil, &l), ""},
		{Strings(a, "notl", nil, &l), "notl must be a list of strings"},
	} {
		got := errs(c.diags)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
	if s != "x" || n != 7 || b != true || len(l) != 2 {
		t.Errorf("read s=%q n=%d b=%v l=%q", s, n, b, l)
	}
	var off time.Duration = time.Hour
	if diags := Duration(a, "zero", nil, &off, time.Second, true); diags.HasErrors() || off != 0 {
		t.Errorf("zero with off: %v, %v", off, diags)
	}
}
