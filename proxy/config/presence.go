package config

import (
	"errors"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/ssegate/ssegate/sources"
)

// Presence makes who is on a route's streams known: asked of every
// replica at once, and, with Subject, each join and leave published.
type Presence struct {
	// Claims are what a client's presence shows of it: its claims of
	// these names, in join and leave events and in presence answers.
	Claims []string
	// Subject, when set, is where the joins and leaves of a stream are
	// published: an expression of path, evaluated per stream.
	Subject hcl.Expression
	// Range is where the presence block is declared.
	Range hcl.Range
}

var presenceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "claims"}, {Name: "subject"}},
}

// maxPresenceClaims bounds the claims a presence block shows, which go
// into every join and leave.
const maxPresenceClaims = 16

// presence reads a presence block of rt.
func (d *decoder) presence(b *hcl.Block, rt *Route) *Presence {
	content, diags := b.Body.Content(presenceSchema)
	d.diags = append(d.diags, diags...)
	p := &Presence{Range: b.DefRange}
	a := content.Attributes
	if len(rt.Auth) > 0 {
		p.Claims = []string{"sub"}
	}
	if d.strings(a, "claims", &p.Claims) {
		switch {
		case len(rt.Auth) == 0 && len(p.Claims) > 0:
			d.errorf(a["claims"].Expr.Range(), "Claims without auth", "A route without auth has no claims to show: remove claims, or add auth.")
		case len(p.Claims) > maxPresenceClaims:
			d.errorf(a["claims"].Expr.Range(), "Too many claims", "A presence shows at most %d claims: each goes into every join and leave.", maxPresenceClaims)
		}
	}
	if attr, ok := a["subject"]; ok {
		p.Subject = attr.Expr
		d.presenceSubject(attr, rt)
	}
	return p
}

// presenceSubject checks a presence subject: it reads path alone, every
// parameter of it (the streams of the route would mix otherwise), and
// makes a subject to publish to, whatever the path values.
func (d *decoder) presenceSubject(attr *hcl.Attribute, rt *Route) {
	scope := sources.Scope{"path": rt.Params}
	diags := scope.Check(attr.Expr, d.ctx)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return
	}
	for _, p := range rt.Params {
		if !sources.ReferencesAttr(attr.Expr, "path", p) {
			d.errorf(attr.Expr.Range(), "Presence subject shared by streams", "The subject does not use path.%s: the joins and leaves of the route's streams would mix. Use every path parameter in it.", p)
			return
		}
	}
	// With "x" for every value: a subject then, or a template that can
	// never make one.
	subject, err := d.presencePattern(&Presence{Subject: attr.Expr}, rt, "x")
	if err == nil {
		err = sources.CheckPublishable(subject)
	}
	if err != nil {
		d.errorf(attr.Expr.Range(), "Invalid presence subject", "%v", err)
	}
}

// presencePattern evaluates p's subject with every path value set to v.
func (d *decoder) presencePattern(p *Presence, rt *Route, v string) (string, error) {
	path := map[string]cty.Value{}
	for _, name := range rt.Params {
		path[name] = cty.StringVal(v)
	}
	ctx := d.ctx.NewChild()
	ctx.Variables = map[string]cty.Value{"path": cty.ObjectVal(path)}
	return p.SubjectIn(ctx)
}

// SubjectIn evaluates the presence subject with a stream's variables.
func (p *Presence) SubjectIn(streamCtx *hcl.EvalContext) (string, error) {
	val, diags := p.Subject.Value(streamCtx)
	if diags.HasErrors() {
		return "", diags
	}
	if val.IsNull() || !val.IsKnown() || val.Type() != cty.String {
		return "", errors.New("the presence subject must be a string")
	}
	return val.AsString(), nil
}
