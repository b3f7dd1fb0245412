package sources

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/nats-io/nats.go"
	"github.com/zclconf/go-cty/cty"
	"golang.org/x/text/unicode/norm"

	"github.com/ssegate/ssegate/internal/hclattr"
	"github.com/ssegate/ssegate/sse"
)

// natsSubject is a `source "nats"` block: the messages of one subject, which may be
// built from the stream's variables (`subject = "stocks.${path.symbol}"`).
type natsSubject struct {
	SubjectExpr hcl.Expression
	Mapping     Mapping
	Range       hcl.Range
}

var (
	_ Spec  = (*natsSubject)(nil)
	_ Keyed = (*natsSubject)(nil)
)

var natsSchema = &hcl.BodySchema{
	Attributes: append([]hcl.AttributeSchema{{Name: "subject", Required: true}, {Name: "conflation_key"}}, mappingAttrs...),
}

// decodeNATSSubject decodes the body of a `source "nats"` block of route rt; ctx
// holds the functions. The subject may read the stream's variables, path
// and, on a route with auth, auth.claims: a stream is one set of resolved
// subjects, so each user gets their own. The per-message mapping may not
// read auth: it is shared by everyone on the stream.
func decodeNATSSubject(block *hcl.Block, ctx *hcl.EvalContext, rt RouteInfo) (*natsSubject, hcl.Diagnostics) {
	content, diags := block.Body.Content(natsSchema)
	src := &natsSubject{Range: block.DefRange}
	if attr, ok := content.Attributes["subject"]; ok {
		src.SubjectExpr = attr.Expr
		d := rt.SubjectScope().Check(attr.Expr, ctx)
		if !d.HasErrors() {
			d = checkSubjectTemplate(attr, ctx, rt.Scope())
		}
		diags = append(diags, d...)
	}
	var d hcl.Diagnostics
	src.Mapping, d = decodeMapping(content.Attributes, ctx, rt.Scope())
	diags = append(diags, d...)
	if rt.Topics && src.SubjectExpr != nil && !references(src.SubjectExpr, "topic") {
		// Read once for every topic of a stream, its events belong to
		// none of them.
		for _, e := range []hcl.Expression{src.Mapping.Event, src.Mapping.ID, src.Mapping.Data, src.Mapping.Key} {
			if references(e, "topic") {
				diags = append(diags, hclattr.Errorf(e.Range(), "Topic of a subject shared by topics",
					"This source's subject does not read topic.name, so it is read once for all the topics of a stream and its events belong to none of them: its event, id and data cannot read topic.")...)
			}
		}
	}
	return src, diags
}

// checkSubjectTemplate evaluates the subject with every stream variable set
// to a valid token, so a subject that can never be valid fails at load time.
func checkSubjectTemplate(attr *hcl.Attribute, parent *hcl.EvalContext, scope Scope) hcl.Diagnostics {
	ctx := parent.NewChild()
	ctx.Variables = make(map[string]cty.Value, len(scope))
	for root, attrs := range scope {
		obj := make(map[string]cty.Value, len(attrs))
		for _, a := range attrs {
			obj[a] = cty.StringVal("x")
		}
		ctx.Variables[root] = cty.ObjectVal(obj)
	}
	if _, err := subject(attr.Expr, ctx, true); err != nil {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid subject",
			Detail:   err.Error(),
			Subject:  attr.Expr.Range().Ptr(),
		}}
	}
	return nil
}

func init() {
	Register("nats", func(b *hcl.Block, ctx *hcl.EvalContext, rt RouteInfo) (Spec, hcl.Diagnostics) {
		return decodeNATSSubject(b, ctx, rt)
	})
}

// Subject resolves the subject with the stream's variables.
func (n *natsSubject) Subject(streamCtx *hcl.EvalContext) (string, error) {
	return evalSubject(n.SubjectExpr, streamCtx)
}

// Event maps a message with the block's event, id and data.
func (n *natsSubject) Event(streamCtx *hcl.EvalContext, m *nats.Msg) (sse.Event, error) {
	msg := Message{Subject: m.Subject, Headers: m.Header, Body: m.Data}
	ev, err := n.Mapping.Apply(streamCtx, &msg)
	if err != nil {
		return sse.Event{}, fmt.Errorf("message on %q: %w", m.Subject, err)
	}
	return ev, nil
}

// Key is m's conflation key: the block's conflation_key expression's
// value, or "" when it has none.
func (n *natsSubject) Key(streamCtx *hcl.EvalContext, m *nats.Msg) (string, error) {
	msg := Message{Subject: m.Subject, Headers: m.Header, Body: m.Data}
	return n.Mapping.KeyOf(streamCtx, &msg)
}

// DefRange is where the block is declared.
func (n *natsSubject) DefRange() hcl.Range { return n.Range }

// Pattern is the subject with every part that reads path, topic or auth
// as "*".
func (n *natsSubject) Pattern(ctx *hcl.EvalContext) (string, error) {
	return pattern(n.SubjectExpr, ctx)
}

func evalSubject(expr hcl.Expression, ctx *hcl.EvalContext) (string, error) {
	return subject(expr, ctx, false)
}

// subject evaluates a subject template. A part that reads the client's
// claims must give one plain token: claims are the client's to choose
// (within what its issuer signs), and a "*", ">" or "." there would widen
// the subscription to other clients' subjects. With placeholder, such
// parts stand as "x", for checks before any claims exist.
func subject(expr hcl.Expression, ctx *hcl.EvalContext, placeholder bool) (string, error) {
	var b strings.Builder
	for _, part := range templateParts(expr) {
		claim := references(part, "auth")
		if claim && placeholder {
			b.WriteString("x")
			continue
		}
		s, ok, err := evalText(part, ctx, "subject")
		if err != nil {
			return "", err
		}
		if claim && (!ok || !ValidToken(s)) {
			return "", fmt.Errorf("a claim gives %q to the subject, which is not one subject token", s)
		}
		b.WriteString(s)
	}
	s := b.String()
	if err := validSubject(s); err != nil {
		return "", err
	}
	return s, nil
}

// pattern evaluates a subject template with the parts that vary by
// stream (reading path or auth) as "*", which must then be whole tokens.
func pattern(expr hcl.Expression, ctx *hcl.EvalContext) (string, error) {
	var b strings.Builder
	for _, part := range templateParts(expr) {
		if references(part, "path") || references(part, "topic") || references(part, "auth") {
			b.WriteString("*")
			continue
		}
		s, _, err := evalText(part, ctx, "subject")
		if err != nil {
			return "", err
		}
		b.WriteString(s)
	}
	s := b.String()
	if err := validSubject(s); err != nil {
		return "", fmt.Errorf("%w: a JetStream history needs the parts of the subject that vary by stream to be whole tokens", err)
	}
	return s, nil
}

// templateParts splits a string template into its literal and
// interpolated parts; any other expression is one part.
func templateParts(expr hcl.Expression) []hcl.Expression {
	switch e := expr.(type) {
	case *hclsyntax.TemplateExpr:
		parts := make([]hcl.Expression, len(e.Parts))
		for i, p := range e.Parts {
			parts[i] = p
		}
		return parts
	case *hclsyntax.TemplateWrapExpr:
		return []hcl.Expression{e.Wrapped}
	}
	return []hcl.Expression{expr}
}

// Bounds of a subject ssegate sends to NATS. nats-server closes a client
// connection whose protocol line exceeds its max_control_line (4 KiB by
// default), and a subscription, a publish with its reply subject or a
// JetStream consumer request carries the subject in such a line, next to
// a stream and consumer name: a subject within these bounds always fits.
const (
	MaxSubjectLength = 1024
	MaxTokenLength   = 256
)

// validSubject checks a subject to subscribe to: dot-separated non-empty
// tokens without white space, control characters or invalid UTF-8, within
// MaxSubjectLength and MaxTokenLength bytes; "*" and a final ">" are
// wildcards.
func validSubject(s string) error {
	if s == "" {
		return fmt.Errorf("subject is empty")
	}
	if len(s) > MaxSubjectLength {
		return fmt.Errorf("subject is %d bytes long, over the limit of %d", len(s), MaxSubjectLength)
	}
	tokens := strings.Split(s, ".")
	for i, tok := range tokens {
		switch {
		case tok == "":
			return fmt.Errorf("subject %q has an empty token", s)
		case len(tok) > MaxTokenLength:
			return fmt.Errorf("subject token %d is %d bytes long, over the limit of %d", i+1, len(tok), MaxTokenLength)
		case strings.ContainsFunc(tok, badSubjectRune):
			return fmt.Errorf("subject %q contains white space, a control character or invalid UTF-8", s)
		case tok == ">" && i != len(tokens)-1:
			return fmt.Errorf("subject %q: \">\" must be the last token", s)
		case len(tok) > 1 && strings.ContainsAny(tok, "*>"):
			return fmt.Errorf("subject %q: wildcards must be whole tokens", s)
		}
	}
	return nil
}

// SubjectsOverlap reports whether some subject matches both a and b,
// valid subjects that may hold wildcards.
func SubjectsOverlap(a, b string) bool {
	for {
		x, restA, moreA := strings.Cut(a, ".")
		y, restB, moreB := strings.Cut(b, ".")
		switch {
		case x == ">" || y == ">":
			return true
		case x != y && x != "*" && y != "*":
			return false
		case !moreA || !moreB:
			return moreA == moreB
		}
		a, b = restA, restB
	}
}

// ValidToken reports whether s can stand as one subject token: a path
// parameter or claim filled into a subject must not add tokens or
// wildcards, and must mean the bytes it is: HCL turns strings into their
// NFC form, so a value that NFC changes (an "e" and a combining accent)
// would read another value's subject (the precomposed "é").
func ValidToken(s string) bool {
	return s != "" && len(s) <= MaxTokenLength &&
		!strings.ContainsFunc(s, func(r rune) bool { return badSubjectRune(r) || r == '.' || r == '*' || r == '>' }) &&
		norm.NFC.IsNormalString(s)
}

// badSubjectRune is what no subject token may hold.
func badSubjectRune(r rune) bool {
	return r <= ' ' || r == 0x7f || r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r)
}
