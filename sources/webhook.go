package sources

import (
	"mime"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/rs/zerolog"

	"github.com/ssegate/ssegate/sources/hookverify"

	"github.com/ssegate/ssegate/internal/hclattr"
)

// Defaults of a webhook block.
const (
	defaultWebhookMaxBody = 1 << 20
	DefaultDedupWindow    = 10 * time.Minute
	// DefaultBodyTimeout bounds the time a sender has to send the body:
	// a megabyte at 100 KB/s, and nobody holds a handler by trickling.
	DefaultBodyTimeout = 10 * time.Second
	// dedupLimit bounds the delivery ids remembered, whatever the window.
	dedupLimit = 100_000
)

// webhookSource is a `source "webhook"` block: deliveries POSTed to a path of
// ssegate's own, verified, mapped, and published to NATS.
type webhookSource struct {
	relayed
	Path         string
	Methods      []string
	MaxBody      int
	BodyTimeout  time.Duration
	ContentTypes []string
	DedupWindow  time.Duration
	Mapping      Mapping

	routing
	verify hookverify.Verifier
	bearer bool // verified by bearer token: a 401 names the scheme
	ctx    *hcl.EvalContext
}

var _ Ingress = (*webhookSource)(nil)

var webhookSchema = &hcl.BodySchema{
	Attributes: append([]hcl.AttributeSchema{
		{Name: "path", Required: true}, {Name: "methods"}, {Name: "max_body"}, {Name: "body_timeout"},
		{Name: "content_types"}, {Name: "subject"}, {Name: "dedup_window"},
	}, mappingAttrs...),
	Blocks: []hcl.BlockHeaderSchema{{Type: "verify", LabelNames: []string{"style"}}},
}

func init() { Register("webhook", decodeWebhook) }

func decodeWebhook(block *hcl.Block, ctx *hcl.EvalContext, rt RouteInfo) (Spec, hcl.Diagnostics) {
	content, diags := block.Body.Content(webhookSchema)
	a := content.Attributes
	w := &webhookSource{
		relayed:     relayed{block.DefRange},
		Methods:     []string{http.MethodPost},
		MaxBody:     defaultWebhookMaxBody,
		BodyTimeout: DefaultBodyTimeout,
		DedupWindow: DefaultDedupWindow,
		ctx:         ctx,
	}
	diags = append(diags, hclattr.String(a, "path", ctx, &w.Path)...)
	if attr, ok := a["path"]; ok && !diags.HasErrors() && !plainPath(w.Path) {
		diags = append(diags, hclattr.Errorf(attr.Expr.Range(), "Invalid webhook path", "path = %q must be a clean absolute path without a trailing slash or parameters, like \"/hooks/github\": the subject, not the path, picks the stream.", w.Path)...)
	}
	if d := hclattr.Strings(a, "methods", ctx, &w.Methods); d.HasErrors() {
		diags = append(diags, d...)
	} else if attr, ok := a["methods"]; ok {
		diags = append(diags, checkMethods(attr, w.Methods)...)
	}
	diags = append(diags, hclattr.Int(a, "max_body", ctx, &w.MaxBody, 1)...)
	diags = append(diags, hclattr.Duration(a, "body_timeout", ctx, &w.BodyTimeout, time.Millisecond, false)...)
	diags = append(diags, hclattr.Strings(a, "content_types", ctx, &w.ContentTypes)...)
	for _, ct := range w.ContentTypes {
		if mt, params, err := mime.ParseMediaType(ct); err != nil || len(params) > 0 || mt != strings.ToLower(ct) {
			diags = append(diags, hclattr.Errorf(a["content_types"].Expr.Range(), "Invalid content type", "%q is not a bare media type; write it like \"application/json\", without parameters.", ct)...)
		}
	}
	diags = append(diags, hclattr.Duration(a, "dedup_window", ctx, &w.DedupWindow, 0, true)...)
	var d hcl.Diagnostics
	w.routing, d = decodeRouting(a, block, ctx, rt, "webhook", msgAttrNames(), "gh.${msg.json.repository.name}")
	diags = append(diags, d...)
	w.Mapping, d = decodeMapping(a, ctx, Scope{})
	diags = append(diags, d...)
	w.verify, d = decodeVerify(content.Blocks, block, ctx)
	w.bearer = len(content.Blocks) > 0 && content.Blocks[0].Labels[0] == "bearer"
	return w, append(diags, d...)
}

// decodeVerify reads the one verify block a webhook must have: accepting
// unsigned deliveries is a choice to write down (verify "none" {}).
func decodeVerify(blocks hcl.Blocks, parent *hcl.Block, ctx *hcl.EvalContext) (hookverify.Verifier, hcl.Diagnostics) {
	if len(blocks) == 0 {
		return nil, hclattr.Errorf(parent.DefRange, "Missing verify block",
			"A webhook must say how deliveries are verified: verify \"hmac\", \"stripe\", \"standard\" or \"bearer\" { ... }, or verify \"none\" {} to accept anything sent to its path.")
	}
	if len(blocks) > 1 {
		return nil, hclattr.Errorf(blocks[1].DefRange, "Duplicate verify block", "A webhook has one verify block; the first is at %s:%d.", blocks[0].DefRange.Filename, blocks[0].DefRange.Start.Line)
	}
	b := blocks[0]
	schemas := map[string][]hcl.AttributeSchema{
		"hmac":     {{Name: "secret", Required: true}, {Name: "header"}, {Name: "prefix"}},
		"stripe":   {{Name: "secret", Required: true}, {Name: "tolerance"}},
		"standard": {{Name: "secret", Required: true}, {Name: "tolerance"}},
		"bearer":   {{Name: "tokens", Required: true}},
		"none":     nil,
	}
	style := b.Labels[0]
	schema, ok := schemas[style]
	if !ok {
		return nil, hclattr.Errorf(b.LabelRanges[0], "Unknown verify style", "There is no verify style %q; use \"hmac\", \"stripe\", \"standard\", \"bearer\" or \"none\".", style)
	}
	content, diags := b.Body.Content(&hcl.BodySchema{Attributes: schema})
	if diags.HasErrors() {
		return nil, diags
	}
	a := content.Attributes
	var secret, header, prefix string
	header, prefix = "X-Hub-Signature-256", "sha256="
	var tolerance time.Duration
	var tokens []string
	diags = append(diags, hclattr.String(a, "secret", ctx, &secret)...)
	diags = append(diags, hclattr.String(a, "header", ctx, &header)...)
	diags = append(diags, hclattr.String(a, "prefix", ctx, &prefix)...)
	diags = append(diags, hclattr.Duration(a, "tolerance", ctx, &tolerance, time.Second, false)...)
	diags = append(diags, hclattr.Strings(a, "tokens", ctx, &tokens)...)
	if diags.HasErrors() {
		return nil, diags
	}
	if attr, ok := a["secret"]; ok && secret == "" {
		return nil, hclattr.Errorf(attr.Expr.Range(), "Empty secret", "The secret is empty, so anyone could sign a delivery.")
	}
	if attr, ok := a["header"]; ok && header == "" {
		return nil, hclattr.Errorf(attr.Expr.Range(), "Empty header", "header names the request header that carries the signature; it cannot be empty.")
	}
	if attr, ok := a["tokens"]; ok && (len(tokens) == 0 || slices.Contains(tokens, "")) {
		return nil, hclattr.Errorf(attr.Expr.Range(), "Empty token", "tokens must hold at least one token, and no empty one.")
	}
	switch style {
	case "hmac":
		return hookverify.HMAC([]byte(secret), header, prefix), nil
	case "stripe":
		return hookverify.Stripe([]byte(secret), tolerance), nil
	case "standard":
		v, err := hookverify.StandardWebhooks(secret, tolerance)
		if err != nil {
			// The error may quote the secret; say only what is wrong.
			return nil, hclattr.Errorf(a["secret"].Expr.Range(), "Invalid secret", "A Standard Webhooks secret is \"whsec_\" followed by base64.")
		}
		return v, nil
	case "bearer":
		return hookverify.Bearer(tokens), nil
	}
	return nil, nil
}

// plainPath reports whether p is a clean absolute path that ServeMux
// matches as it is: no parameters, no trailing slash (which would match a
// whole subtree), no dot segments.
func plainPath(p string) bool {
	return strings.HasPrefix(p, "/") && p != "/" && path.Clean(p) == p && !strings.ContainsAny(p, "{} \t")
}

// checkMethods refuses what would make a webhook unreachable or twice
// registered: no methods, a method that is not an HTTP token, a repeat.
func checkMethods(attr *hcl.Attribute, methods []string) hcl.Diagnostics {
	if len(methods) == 0 {
		return hclattr.Errorf(attr.Expr.Range(), "No methods", "methods must name at least one method, like [\"POST\"].")
	}
	seen := map[string]bool{}
	for i, m := range methods {
		methods[i] = strings.ToUpper(m)
		if !httpToken(methods[i]) {
			return hclattr.Errorf(attr.Expr.Range(), "Invalid method", "%q is not an HTTP method.", m)
		}
		if seen[methods[i]] {
			return hclattr.Errorf(attr.Expr.Range(), "Duplicate method", "%s is listed twice.", methods[i])
		}
		seen[methods[i]] = true
	}
	return nil
}

func httpToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", r) {
			return false
		}
	}
	return true
}

func (hs hookSubject) params() []string {
	var ps []string
	for _, p := range hs.parts {
		if p.param != "" {
			ps = append(ps, p.param)
		}
	}
	return ps
}

// Patterns are the method and path pairs the webhook answers.
func (w *webhookSource) Patterns() []string {
	ps := make([]string, len(w.Methods))
	for i, m := range w.Methods {
		ps[i] = m + " " + w.Path
	}
	return ps
}

// Handler answers deliveries: 202 once NATS has the event, a 4xx saying
// what is wrong with the delivery, or 503 when NATS is unavailable (the
// sender retries), never a 2xx for an event that was not handed on.
func (w *webhookSource) Handler(pub Publisher, log zerolog.Logger, answered func(status int)) http.Handler {
	return &webhookHandler{w: w, pub: pub, log: log, warn: sampled(log), seen: newDedup(w.DedupWindow, dedupLimit), answered: answered}
}
