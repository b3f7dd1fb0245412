package sources

import (
	"fmt"
	"slices"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Scope names the variables an expression may reference: each root name
// with the attribute names it has.
type Scope map[string][]string

// Check reports, as diagnostics pointing at the reference, every variable,
// attribute or function that expr uses and that will not exist when it is
// evaluated, so a typo fails at load time instead of on the first message.
func (s Scope) Check(expr hcl.Expression, ctx *hcl.EvalContext) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, tr := range expr.Variables() {
		root := tr.RootName()
		attrs, ok := s[root]
		if !ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unknown variable",
				Detail:   fmt.Sprintf("There is no variable named %q here. %s", root, s.available()),
				Subject:  tr.SourceRange().Ptr(),
			})
			continue
		}
		if len(tr) < 2 {
			continue
		}
		name, ok := stepName(tr[1])
		if ok && !slices.Contains(attrs, name) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unsupported attribute",
				Detail:   fmt.Sprintf("%s has no attribute %q; it has: %s.", root, name, quotedList(attrs)),
				Subject:  tr.SourceRange().Ptr(),
			})
		}
	}
	if syn, ok := expr.(hclsyntax.Expression); ok {
		diags = append(diags, hclsyntax.VisitAll(syn, func(n hclsyntax.Node) hcl.Diagnostics {
			call, ok := n.(*hclsyntax.FunctionCallExpr)
			if !ok || hasFunction(ctx, call.Name) {
				return nil
			}
			detail := fmt.Sprintf("There is no function named %q.", call.Name)
			if like := closestFunction(ctx, call.Name); like != "" {
				detail += fmt.Sprintf(" Did you mean %q?", like)
			}
			return hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Call to unknown function",
				Detail:   detail,
				Subject:  call.NameRange.Ptr(),
			}}
		})...)
	}
	return diags
}

// closestFunction is the function of ctx (or its parents) whose name is
// nearest to name, as HCL suggests one at the top level: within two
// edits, or "".
func closestFunction(ctx *hcl.EvalContext, name string) string {
	best, bestDist := "", 3
	for ; ctx != nil; ctx = ctx.Parent() {
		for fn := range ctx.Functions {
			if d := levenshtein.Distance(name, fn, nil); d < bestDist || (d == bestDist && best != "" && fn < best) {
				best, bestDist = fn, d
			}
		}
	}
	return best
}

// placeholders returns a context in which every variable of the scope holds
// an unknown value of the right shape, so an expression can be type-checked
// before any real value exists.
func (s Scope) placeholders(parent *hcl.EvalContext) *hcl.EvalContext {
	ctx := parent.NewChild()
	ctx.Variables = make(map[string]cty.Value, len(s))
	for root, attrs := range s {
		obj := make(map[string]cty.Value, len(attrs))
		for _, a := range attrs {
			obj[a] = cty.DynamicVal
		}
		ctx.Variables[root] = cty.ObjectVal(obj)
	}
	return ctx
}

func (s Scope) available() string {
	if len(s) == 0 {
		return "No variables are available in this expression."
	}
	roots := make([]string, 0, len(s))
	for r := range s {
		roots = append(roots, r)
	}
	slices.Sort(roots)
	return "Available: " + quotedList(roots) + "."
}

func stepName(step hcl.Traverser) (string, bool) {
	switch st := step.(type) {
	case hcl.TraverseAttr:
		return st.Name, true
	case hcl.TraverseIndex:
		if st.Key.Type() == cty.String && st.Key.IsKnown() && !st.Key.IsNull() {
			return st.Key.AsString(), true
		}
	}
	return "", false
}

func hasFunction(ctx *hcl.EvalContext, name string) bool {
	for ; ctx != nil; ctx = ctx.Parent() {
		if _, ok := ctx.Functions[name]; ok {
			return true
		}
	}
	return false
}

func quotedList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
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
