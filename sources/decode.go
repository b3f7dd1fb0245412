package sources

import (
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/gocty"
)

// Helpers for the settings of a source block that are fixed at load time
// (a method, an interval): evaluated once with the config's functions and
// reported at the attribute when wrong.

func diagAt(rng hcl.Range, summary, format string, args ...any) hcl.Diagnostics {
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  rng.Ptr(),
	}}
}

// problem is what is wrong with a setting's value.
type problem struct{ summary, detail string }

// static evaluates attribute name, when present, and hands the value to
// set, whose problem becomes a diagnostic at the value.
func static(attrs hcl.Attributes, name string, ctx *hcl.EvalContext, set func(cty.Value) *problem) hcl.Diagnostics {
	attr, ok := attrs[name]
	if !ok {
		return nil
	}
	v, diags := attr.Expr.Value(ctx)
	if diags.HasErrors() {
		return diags
	}
	if p := set(v); p != nil {
		return diagAt(attr.Expr.Range(), p.summary, "%s", p.detail)
	}
	return nil
}

func asString(v cty.Value, name string) (string, *problem) {
	s, err := convert.Convert(v, cty.String)
	if err != nil || s.IsNull() {
		return "", &problem{"Incorrect attribute value type", name + " must be a string."}
	}
	return s.AsString(), nil
}

func staticString(attrs hcl.Attributes, name string, ctx *hcl.EvalContext, dst *string) hcl.Diagnostics {
	return static(attrs, name, ctx, func(v cty.Value) *problem {
		s, p := asString(v, name)
		if p == nil {
			*dst = s
		}
		return p
	})
}

func staticOneOf(attrs hcl.Attributes, name string, ctx *hcl.EvalContext, dst *string, allowed ...string) hcl.Diagnostics {
	return static(attrs, name, ctx, func(v cty.Value) *problem {
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

func staticDuration(attrs hcl.Attributes, name string, ctx *hcl.EvalContext, dst *time.Duration, least time.Duration) hcl.Diagnostics {
	return static(attrs, name, ctx, func(v cty.Value) *problem {
		s, p := asString(v, name)
		if p != nil {
			return p
		}
		d, err := time.ParseDuration(s)
		switch {
		case err != nil || d < 0:
			return &problem{"Invalid duration", fmt.Sprintf("%s = %q is not a duration; write a number with a unit, like \"15s\", \"500ms\" or \"5m\".", name, s)}
		case d < least:
			return &problem{"Duration too short", fmt.Sprintf("%s = %q is too short; use at least %q.", name, s, least.String())}
		}
		*dst = d
		return nil
	})
}

func staticInt(attrs hcl.Attributes, name string, ctx *hcl.EvalContext, dst *int, least int) hcl.Diagnostics {
	return static(attrs, name, ctx, func(v cty.Value) *problem {
		var n int
		if err := gocty.FromCtyValue(v, &n); err != nil || n < least {
			return &problem{"Invalid " + name, fmt.Sprintf("%s must be a whole number of at least %d.", name, least)}
		}
		*dst = n
		return nil
	})
}

func staticStrings(attrs hcl.Attributes, name string, ctx *hcl.EvalContext, dst *[]string) hcl.Diagnostics {
	return static(attrs, name, ctx, func(v cty.Value) *problem {
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

// references reports whether expr reads the variable root.
func references(expr hcl.Expression, root string) bool {
	if expr == nil {
		return false
	}
	for _, tr := range expr.Variables() {
		if tr.RootName() == root {
			return true
		}
	}
	return false
}

// lookupVar finds a variable in ctx or its parents.
func lookupVar(ctx *hcl.EvalContext, name string) (cty.Value, bool) {
	for ; ctx != nil; ctx = ctx.Parent() {
		if v, ok := ctx.Variables[name]; ok {
			return v, true
		}
	}
	return cty.NilVal, false
}
