package sources

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/gocty"
)

// publishTimeout bounds how long a feeder waits for NATS to take a batch.
const publishTimeout = 5 * time.Second

// feed holds what the fetching kinds (poll, stream) share: an upstream
// request built from the stream's variables, the subject the results go
// to, and the mapping of each result.
type feed struct {
	relayed
	url       hcl.Expression
	headers   hcl.Expression // a map of strings, or nil
	subject   hcl.Expression // nil: the route's default subject
	base      string
	params    []string
	perStream bool
	Mapping   Mapping
}

var feedAttrs = append([]hcl.AttributeSchema{
	{Name: "url", Required: true}, {Name: "headers"}, {Name: "subject"},
}, mappingAttrs...)

// decodeFeed reads the shared attributes; stream-level expressions may use
// path, per-message ones msg too.
func decodeFeed(content *hcl.BodyContent, block *hcl.Block, ctx *hcl.EvalContext, rt Route, extra ...hcl.Expression) (feed, hcl.Diagnostics) {
	f := feed{relayed: relayed{block.DefRange}, base: rt.DefaultSubject(), params: rt.Params}
	scope := rt.Scope()
	var diags hcl.Diagnostics
	a := content.Attributes
	for _, x := range []struct {
		name string
		dst  *hcl.Expression
	}{{"url", &f.url}, {"headers", &f.headers}, {"subject", &f.subject}} {
		if attr, ok := a[x.name]; ok {
			*x.dst = attr.Expr
			diags = append(diags, scope.Check(attr.Expr, ctx)...)
		}
	}
	for _, e := range append([]hcl.Expression{f.url, f.headers, f.subject}, extra...) {
		f.perStream = f.perStream || references(e, "path")
	}
	if f.subject != nil && f.perStream && !diags.HasErrors() {
		for _, p := range rt.Params {
			if !referencesAttr(f.subject, "path", p) {
				diags = append(diags, diagAt(f.subject.Range(), "Subject shared by streams",
					"This source runs once per stream, since it reads path, but its subject does not use path.%s: the streams of this route would receive each other's events. Use every path parameter in subject, or leave subject out.", p)...)
			}
		}
	}
	var d hcl.Diagnostics
	f.Mapping, d = decodeMapping(a, ctx, scope)
	return f, append(diags, d...)
}

// referencesAttr reports whether expr reads root.attr.
func referencesAttr(expr hcl.Expression, root, attr string) bool {
	for _, tr := range expr.Variables() {
		if tr.RootName() != root || len(tr) < 2 {
			continue
		}
		if name, ok := stepName(tr[1]); ok && name == attr {
			return true
		}
	}
	return false
}

// PerStream reports whether the feed depends on the stream's variables.
func (f *feed) PerStream() bool { return f.perStream }

// Subject is where the feed publishes and its streams read: the block's
// subject, or the route's default followed, for a feed run per stream, by
// the stream's parameters.
func (f *feed) Subject(streamCtx *hcl.EvalContext) (string, error) {
	if f.subject != nil {
		s, err := evalSubject(f.subject, streamCtx)
		if err != nil {
			return "", err
		}
		return publishable(s)
	}
	if !f.perStream {
		return f.base, nil
	}
	return strings.Join(append([]string{f.base}, pathValues(streamCtx, f.params)...), "."), nil
}

// request resolves the upstream URL and headers with the stream's
// variables.
func (f *feed) request(streamCtx *hcl.EvalContext) (string, http.Header, error) {
	url, ok, err := evalText(f.url, streamCtx, "url")
	if err == nil && !ok {
		err = fmt.Errorf("url is null")
	}
	if err != nil {
		return "", nil, err
	}
	h := http.Header{}
	if f.headers == nil {
		return url, h, nil
	}
	v, diags := f.headers.Value(streamCtx)
	if diags.HasErrors() {
		return "", nil, fmt.Errorf("headers: %w", diags)
	}
	var m map[string]string
	if !v.IsNull() {
		// An HCL { K = "v" } literal is an object; headers want a map.
		mv, err := convert.Convert(v, cty.Map(cty.String))
		if err == nil {
			err = gocty.FromCtyValue(mv, &m)
		}
		if err != nil {
			return "", nil, fmt.Errorf("headers must be a map of strings: %w", err)
		}
	}
	for k, val := range m {
		h.Set(k, val)
	}
	return url, h, nil
}

// publisher maps each message of a batch and publishes it to subject, and
// returns once NATS has taken them all. A message whose mapping fails is
// dropped with a warning (trying it again would fail again); NATS being
// unavailable fails the batch, so the reader fetches it again.
func (f *feed) publisher(env FeedEnv, subject string) func(context.Context, Batch) error {
	warn := sampled(env.Log)
	return func(ctx context.Context, b Batch) error {
		if len(b.Messages) == 0 {
			return nil
		}
		if !env.NATS.IsConnected() {
			return fmt.Errorf("NATS is not connected")
		}
		for i := range b.Messages {
			ev, err := f.Mapping.Apply(env.StreamCtx, &b.Messages[i])
			if err != nil {
				warn.Warn().Err(err).Msg("upstream message dropped")
				continue
			}
			if err := env.NATS.PublishMsg(EncodeEvent(subject, ev)); err != nil {
				return fmt.Errorf("publish to %q: %w", subject, err)
			}
		}
		ctx, cancel := context.WithTimeout(ctx, publishTimeout)
		defer cancel()
		if err := env.NATS.FlushWithContext(ctx); err != nil {
			return fmt.Errorf("publish to %q: %w", subject, err)
		}
		return nil
	}
}

// run resolves the feed for one stream (or route) and runs r on it.
func (f *feed) run(ctx context.Context, env FeedEnv, r func(url string, h http.Header) Reader) {
	subject, err := f.Subject(env.StreamCtx)
	if err == nil {
		var url string
		var h http.Header
		if url, h, err = f.request(env.StreamCtx); err == nil {
			env.Log = env.Log.With().Str("url", url).Str("subject", subject).Logger()
			Run(ctx, r(url, h), f.publisher(env, subject), env.Log)
			return
		}
	}
	env.Log.Error().Err(err).Msg("source cannot start")
}
