package sources

import (
	"fmt"
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

func staticString(attrs hcl.Attributes, name string, ctx *hcl.EvalContext, dst *string) hcl.Diagnostics {
	attr, ok := attrs[name]
	if !ok {
		return nil
	}
	v, diags := attr.Expr.Value(ctx)
	if diags.HasErrors() {
		return diags
	}
	s, err := convert.Convert(v, cty.String)
	if err != nil || s.IsNull() {
		return diagAt(attr.Expr.Range(), "Incorrect attribute value type", "%s must be a string.", name)
	}
	*dst = s.AsString()
	return nil
}

func staticOneOf(attrs hcl.Attributes, name string, ctx *hcl.EvalContext, dst *string, allowed ...string) hcl.Diagnostics {
	if _, ok := attrs[name]; !ok {
		return nil
	}
	var s string
	if diags := staticString(attrs, name, ctx, &s); diags != nil {
		return diags
	}
	for _, a := range allowed {
		if s == a {
			*dst = s
			return nil
		}
	}
	return diagAt(attrs[name].Expr.Range(), "Invalid "+name, "%q is not allowed; use one of %q.", s, allowed)
}

func staticDuration(attrs hcl.Attributes, name string, ctx *hcl.EvalContext, dst *time.Duration, least time.Duration) hcl.Diagnostics {
	if _, ok := attrs[name]; !ok {
		return nil
	}
	var s string
	if diags := staticString(attrs, name, ctx, &s); diags != nil {
		return diags
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil || d < 0:
		return diagAt(attrs[name].Expr.Range(), "Invalid duration", "%s = %q is not a duration; write a number with a unit, like \"15s\", \"500ms\" or \"5m\".", name, s)
	case d < least:
		return diagAt(attrs[name].Expr.Range(), "Duration too short", "%s = %q is too short; use at least %q.", name, s, least.String())
	}
	*dst = d
	return nil
}

func staticInt(attrs hcl.Attributes, name string, ctx *hcl.EvalContext, dst *int, least int) hcl.Diagnostics {
	attr, ok := attrs[name]
	if !ok {
		return nil
	}
	v, diags := attr.Expr.Value(ctx)
	if diags.HasErrors() {
		return diags
	}
	var n int
	if err := gocty.FromCtyValue(v, &n); err != nil || n < least {
		return diagAt(attr.Expr.Range(), "Invalid "+name, "%s must be a whole number of at least %d.", name, least)
	}
	*dst = n
	return nil
}

func staticStrings(attrs hcl.Attributes, name string, ctx *hcl.EvalContext, dst *[]string) hcl.Diagnostics {
	attr, ok := attrs[name]
	if !ok {
		return nil
	}
	v, diags := attr.Expr.Value(ctx)
	if diags.HasErrors() {
		return diags
	}
	var ss []string
	if err := gocty.FromCtyValue(v, &ss); err != nil {
		if lv, cerr := convert.Convert(v, cty.List(cty.String)); cerr == nil && !lv.IsNull() {
			err = gocty.FromCtyValue(lv, &ss)
		}
		if err != nil {
			return diagAt(attr.Expr.Range(), "Incorrect attribute value type", "%s must be a list of strings.", name)
		}
	}
	*dst = ss
	return nil
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
