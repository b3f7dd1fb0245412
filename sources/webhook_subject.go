package sources

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/ssegate/ssegate/internal/hclattr"
)

// hookSubject is the subject template of a source that receives for a
// whole route. A webhook arrives at one path for every stream of its
// route, so the subject picks the stream: the
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

// routing is how a source that receives for a whole route (webhook,
// postgres, redis, kafka) picks the stream of each message: by its
// subject template, or, on a route without parameters, the route's
// default subject.
type routing struct {
	subject   hookSubject
	defaultTo string // when subject is not set
	need      msgField
}

// decodeRouting reads the subject attribute of a block of kind (a word
// for messages, like "webhook"), whose messages have the msg attributes
// msgAttrs; example is a subject that fits route /repos/{repo}.
func decodeRouting(a hcl.Attributes, block *hcl.Block, ctx *hcl.EvalContext, rt RouteInfo, kind string, msgAttrs []string, example string) (routing, hcl.Diagnostics) {
	if rt.Topics {
		// Its messages would need a topic as well as path values to pick
		// a stream; a nats source reading per topic does that.
		return routing{}, hclattr.Errorf(block.DefRange, "Source for a whole route on a route with topics",
			"A %s source cannot feed a route whose clients pick topics. Publish its messages to NATS from a route of their own, on subjects this route's nats source reads per topic, like subject = \"stocks.${topic.name}\".", kind)
	}
	attr, ok := a["subject"]
	switch {
	case ok:
		hs, diags := decodeHookSubject(attr, ctx, rt, kind, msgAttrs)
		return routing{subject: hs, need: msgFieldsUsed(attr.Expr)}, diags
	case len(rt.Params) > 0:
		return routing{}, hclattr.Errorf(block.DefRange, "Missing subject", "Route %q has path parameters, so a %s source needs a subject that says which stream a message feeds: its parts that read the message stand for the parameters, in order, like subject = %q for a route with one.", rt.Path, kind, example)
	}
	return routing{defaultTo: rt.DefaultSubject()}, nil
}

// Subject is what a stream of the route reads.
func (r *routing) Subject(streamCtx *hcl.EvalContext) (string, error) {
	if r.subject.parts == nil {
		return r.defaultTo, nil
	}
	return r.subject.forStream(streamCtx, pathValues(streamCtx, r.subject.params()))
}

// Pattern covers the subjects of every stream of the route.
func (r *routing) Pattern(ctx *hcl.EvalContext) (string, error) {
	if r.subject.parts == nil {
		return r.defaultTo, nil
	}
	var b strings.Builder
	for _, p := range r.subject.parts {
		if p.param != "" {
			b.WriteString("*")
			continue
		}
		s, _, err := evalText(p.expr, ctx, "subject")
		if err != nil {
			return "", err
		}
		b.WriteString(s)
	}
	return b.String(), validSubject(b.String())
}

// subjectIn is the subject of the message in msgCtx, which holds it with
// at least the attributes in r.need.
func (r *routing) subjectIn(msgCtx *hcl.EvalContext) (string, error) {
	if r.subject.parts == nil {
		return r.defaultTo, nil
	}
	return r.subject.forMessage(msgCtx)
}

func decodeHookSubject(attr *hcl.Attribute, ctx *hcl.EvalContext, rt RouteInfo, kind string, msgAttrs []string) (hookSubject, hcl.Diagnostics) {
	scope := Scope{"msg": msgAttrs}
	if diags := scope.Check(attr.Expr, ctx); diags.HasErrors() {
		for _, d := range diags {
			if d.Summary == "Unknown variable" && references(attr.Expr, "path") {
				d.Detail = fmt.Sprintf("A %s source's subject is evaluated for each message, when no stream is known: read the stream's parameter from the message instead (its parts that read msg stand for the route's parameters, in order).", kind)
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
			"The parts of a %s source's subject that read the message pick the stream: one per path parameter of the route, in order. Route %q has %d parameter(s) and this subject reads the message in %d part(s).", kind, rt.Path, len(rt.Params), dynamic)
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
