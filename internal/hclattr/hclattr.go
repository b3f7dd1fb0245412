// Package hclattr reads the attributes of an HCL block whose values are
// fixed at load time (a method, an interval, a list of origins): each is
// evaluated once with the config's functions and checked, and what is
// wrong becomes a diagnostic at the value, worded alike wherever the
// attribute is. The config decoder and every source kind use it.
package hclattr

import (
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/gocty"
)

// Errorf is one error diagnostic at rng.
func Errorf(rng hcl.Range, summary, format string, args ...any) hcl.Diagnostics {
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  rng.Ptr(),
	}}
}

// Pos renders where a range starts as file:line:col.
func Pos(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

// problem is what is wrong with a value.
type problem struct{ summary, detail string }

// read evaluates attribute name, when present, and hands the value to
// set, whose problem becomes a diagnostic at the value.
func read(attrs hcl.Attributes, name string, ctx *hcl.EvalContext, set func(cty.Value) *problem) hcl.Diagnostics {
	attr, ok := attrs[name]
	if !ok {
		return nil
	}
	v, diags := attr.Expr.Value(ctx)
	if diags.HasErrors() {
		return diags
	}
	if p := set(v); p != nil {
		return Errorf(attr.Expr.Range(), p.summary, "%s", p.detail)
	}
	return diags
}

func asString(v cty.Value, name string) (string, *problem) {
	s, err := convert.Convert(v, cty.String)
	if err != nil || s.IsNull() {
		return "", &problem{"Incorrect attribute value type", name + " must be a string."}
	}
	return s.AsString(), nil
}

// String reads a string (numbers and bools as written).
func String(attrs hcl.Attributes, name string, ctx *hcl.EvalContext, dst *string) hcl.Diagnostics {
	return read(attrs, name, ctx, func(v cty.Value) *problem {
		s, p := asString(v, name)
		if p == nil {
			*dst = s
		}
		return p
	})
}

// OneOf reads a string that must be one of allowed.
func OneOf(attrs hcl.Attributes, name string, ctx *hcl.EvalContext, dst *string, allowed ...string) hcl.Diagnostics {
	return read(attrs, name, ctx, func(v cty.Value) *problem {
		s, p := asString(v, name)
		if p != nil {
			return p
		}
		if !slices.Contains(allowed, s) {
			return &problem{"Invalid " + name, fmt.Sprintf("%q is not allowed; use one of %q.", s, allowed)}
		}
		*dst = s
		return nil
	})
}

// Duration reads a duration ("15s") of at least least; when off is true,
// zero is allowed too, and turns the setting off.
func Duration(attrs hcl.Attributes, name string, ctx *hcl.EvalContext, dst *time.Duration, least time.Duration, off bool) hcl.Diagnostics {
	return read(attrs, name, ctx, func(v cty.Value) *problem {
		s, p := asString(v, name)
		if p != nil {
			return p
		}
		d, err := time.ParseDuration(s)
		switch {
		case err != nil || d < 0:
			return &problem{"Invalid duration", fmt.Sprintf("%s = %q is not a duration; write a number with a unit, like \"15s\", \"500ms\" or \"5m\".", name, s)}
		case d == 0 && off:
		case d < least || d == 0:
			also := ""
			if off {
				also = "\"0s\" to turn it off, or "
			}
			return &problem{"Duration too short", fmt.Sprintf("%s = %q is too short; use %sat least %q.", name, s, also, least.String())}
		}
		*dst = d
		return nil
	})
}

// Int reads a whole number of at least least.
func Int(attrs hcl.Attributes, name string, ctx *hcl.EvalContext, dst *int, least int) hcl.Diagnostics {
	return read(attrs, name, ctx, func(v cty.Value) *problem {
		var n int
		if err := gocty.FromCtyValue(v, &n); err != nil || n < least {
			return &problem{"Invalid " + name, fmt.Sprintf("%s must be a whole number of at least %d.", name, least)}
		}
		*dst = n
		return nil
	})
}

// Bool reads true or false.
func Bool(attrs hcl.Attributes, name string, ctx *hcl.EvalContext, dst *bool) hcl.Diagnostics {
	return read(attrs, name, ctx, func(v cty.Value) *problem {
		if err := gocty.FromCtyValue(v, dst); err != nil {
			return &problem{"Incorrect attribute value type", name + " must be true or false."}
		}
		return nil
	})
}

// Strings reads a list of strings.
func Strings(attrs hcl.Attributes, name string, ctx *hcl.EvalContext, dst *[]string) hcl.Diagnostics {
	return read(attrs, name, ctx, func(v cty.Value) *problem {
		var ss []string
		lv, err := convert.Convert(v, cty.List(cty.String))
		if err == nil && !lv.IsNull() {
			err = gocty.FromCtyValue(lv, &ss)
		}
		if err != nil || lv.IsNull() {
			return &problem{"Incorrect attribute value type", name + " must be a list of strings."}
		}
		*dst = ss
		return nil
	})
}
