package sources

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/ssegate/ssegate/internal/hclattr"
)

// hookSubject is a webhook's subject template. A webhook arrives at one
// path for every stream of its route, so the subject picks the stream: the
// parts of the template that read the message stand, in order, for the
// route's path parameters. With `subject = "gh.${msg.json.repository.name}"`
// on route /repos/{repo}, a delivery for repository "web" is published to
// gh.web, which is what the stream /repos/web reads.
type hookSubject struct {
	parts []subjectPart
}

type subjectPart struct {
	expr  hcl.Expression
	param string // the path parameter it stands for; "" for a fixed part
}

func decodeHookSubject(attr *hcl.Attribute, ctx *hcl.EvalContext, rt RouteInfo) (hookSubject, hcl.Diagnostics) {
	scope := Scope{"msg": msgAttrNames()}
	if diags := scope.Check(attr.Expr, ctx); diags.HasErrors() {
		for _, d := range diags {
			if d.Summary == "Unknown variable" && references(attr.Expr, "path") {
				d.Detail = "A webhook's subject is evaluated when a delivery arrives, when no stream is known: read the stream's parameter from the message instead (its parts that read msg stand for the route's parameters, in order)."
			}
		}
		return hookSubject{}, diags
	}
	var hs hookSubject
	var dynamic int
	for _, e := range templateParts(attr.Expr) {
		p := subjectPart{expr: e}
		if references(e, "msg") {
			if dynamic < len(rt.Params) {
				p.param = rt.Params[dynamic]
			}
			dynamic++
		}
		hs.parts = append(hs.parts, p)
	}
	if dynamic != len(rt.Params) {
		return hookSubject{}, hclattr.Errorf(attr.Expr.Range(), "Subject does not match the route",
			"The parts of a webhook's subject that read the message pick the stream: one per path parameter of the route, in order. Route %q has %d parameter(s) and this subject reads the message in %d part(s).", rt.Path, len(rt.Params), dynamic)
	}
	// Each part that stands for a parameter must be a whole token, or the
	// stream's subject could not be rebuilt from its parameters.
	for i, p := range hs.parts {
		if p.param == "" {
			continue
		}
		before, after := hs.fixedText(i-1, ctx), hs.fixedText(i+1, ctx)
		if (i > 0 && !strings.HasSuffix(before, ".")) || (i < len(hs.parts)-1 && !strings.HasPrefix(after, ".")) {
			return hookSubject{}, hclattr.Errorf(p.expr.Range(), "Subject part is not a whole token",
				"This part stands for path.%s and must be a whole subject token, between dots.", p.param)
		}
	}
	// A subject that cannot be valid fails now, not on the first delivery.
	vals := make([]string, len(rt.Params))
	for i := range vals {
		vals[i] = "x"
	}
	if _, err := hs.forStream(ctx, vals); err != nil {
		return hookSubject{}, hclattr.Errorf(attr.Expr.Range(), "Invalid subject", "%s", err)
	}
	return hs, nil
}

// fixedText is the text of fixed part i, or "" if there is none.
func (hs hookSubject) fixedText(i int, ctx *hcl.EvalContext) string {
	if i < 0 || i >= len(hs.parts) || hs.parts[i].param != "" {
		return ""
	}
	s, _, _ := evalText(hs.parts[i].expr, ctx, "subject")
	return s
}

// forStream is the subject a stream with the given parameter values reads.
func (hs hookSubject) forStream(ctx *hcl.EvalContext, vals []string) (string, error) {
	var b strings.Builder
	n := 0
	for _, p := range hs.parts {
		if p.param != "" {
			b.WriteString(vals[n])
			n++
			continue
		}
		s, _, err := evalText(p.expr, ctx, "subject")
		if err != nil {
			return "", err
		}
		b.WriteString(s)
	}
	return publishable(b.String())
}

// forMessage is the subject a delivery is published to; ctx has msg.
func (hs hookSubject) forMessage(ctx *hcl.EvalContext) (string, error) {
	var b strings.Builder
	for _, p := range hs.parts {
		s, ok, err := evalText(p.expr, ctx, "subject")
		if err != nil {
			return "", err
		}
		if p.param != "" && (!ok || !ValidToken(s)) {
			return "", fmt.Errorf("subject: the part for path.%s is %q, which is not one subject token (no dots, wildcards or white space)", p.param, s)
		}
		b.WriteString(s)
	}
	return publishable(b.String())
}

// CheckPublishable says why s is not a subject to publish to, if it is
// not: invalid, or with wildcards.
func CheckPublishable(s string) error {
	_, err := publishable(s)
	return err
}

// publishable checks a subject to publish to: valid, without wildcards.
func publishable(s string) (string, error) {
	if err := validSubject(s); err != nil {
		return "", err
	}
	if strings.ContainsAny(s, "*>") {
		return "", fmt.Errorf("subject %q has wildcards; a source publishes to one subject", s)
	}
	return s, nil
}

// pathValues reads the stream's parameter values, in route order.
func pathValues(streamCtx *hcl.EvalContext, params []string) []string {
	path, _ := lookupVar(streamCtx, "path")
	vals := make([]string, len(params))
	for i, p := range params {
		if v := path.GetAttr(p); v.Type() == cty.String && v.IsKnown() && !v.IsNull() {
			vals[i] = v.AsString()
		}
	}
	return vals
}
