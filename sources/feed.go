package sources

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/gocty"

	"github.com/ssegate/ssegate/internal/hclattr"
)

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
	perTopic  bool // reads topic: runs once per topic of a stream
	Mapping   Mapping
}

var feedAttrs = append([]hcl.AttributeSchema{
	{Name: "url", Required: true}, {Name: "headers"}, {Name: "subject"},
}, mappingAttrs...)

// decodeFeed reads the shared attributes; stream-level expressions may use
// path, per-message ones msg too.
func decodeFeed(content *hcl.BodyContent, block *hcl.Block, ctx *hcl.EvalContext, rt RouteInfo, extra ...hcl.Expression) (feed, hcl.Diagnostics) {
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
	var d hcl.Diagnostics
	f.Mapping, d = decodeMapping(a, ctx, scope)
	diags = append(diags, d...)
	// Whatever reads path or topic needs a stream's values: the feed then
	// runs per stream (per topic, when it reads topic), or the expression
	// would fail on every message.
	for _, e := range append([]hcl.Expression{f.url, f.headers, f.subject, f.Mapping.Event, f.Mapping.ID, f.Mapping.Data}, extra...) {
		f.perTopic = f.perTopic || references(e, "topic")
		f.perStream = f.perStream || f.perTopic || references(e, "path")
	}
	if f.subject != nil && f.perStream && !diags.HasErrors() {
		// A run is shared by every stream that reads its subject: one
		// whose subject left out a value it fetches by would hand each
		// stream the others' events.
		for _, p := range rt.Params {
			if !ReferencesAttr(f.subject, "path", p) {
				diags = append(diags, hclattr.Errorf(f.subject.Range(), "Subject shared by streams",
					"This source runs once per stream, since it reads path, but its subject does not use path.%s: the streams of this route would receive each other's events. Use every path parameter in subject, or leave subject out.", p)...)
			}
		}
		if f.perTopic && !ReferencesAttr(f.subject, "topic", "name") {
			diags = append(diags, hclattr.Errorf(f.subject.Range(), "Subject shared by topics",
				"This source runs once per topic, since it reads topic, but its subject does not use topic.name: the topics of a stream would receive each other's events. Use topic.name in subject, or leave subject out.")...)
		}
	}
	return f, diags
}

// ReferencesAttr reports whether expr reads root.attr (or root["attr"]).
func ReferencesAttr(expr hcl.Expression, root, attr string) bool {
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
// the stream's parameters and, for one run per topic, by the topic.
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
	tokens := append([]string{f.base}, pathValues(streamCtx, f.params)...)
	if f.perTopic {
		tokens = append(tokens, topicName(streamCtx))
	}
	return strings.Join(tokens, "."), nil
}

// topicName is the topic.name of streamCtx, or "" when it has none.
func topicName(streamCtx *hcl.EvalContext) string {
	topic, _ := lookupVar(streamCtx, "topic")
	if topic.Type().IsObjectType() && topic.Type().HasAttribute("name") {
		if v := topic.GetAttr("name"); v.Type() == cty.String && v.IsKnown() && !v.IsNull() {
			return v.AsString()
		}
	}
	return ""
}

// Pattern covers the subjects of every stream of the route.
func (f *feed) Pattern(ctx *hcl.EvalContext) (string, error) {
	if f.subject != nil {
		return pattern(f.subject, ctx)
	}
	if !f.perStream {
		return f.base, nil
	}
	varying := len(f.params)
	if f.perTopic {
		varying++
	}
	return f.base + strings.Repeat(".*", varying), nil
}

// request resolves the upstream URL and headers with the stream's
// variables.
func (f *feed) request(streamCtx *hcl.EvalContext) (string, http.Header, error) {
	target, ok, err := evalText(f.url, streamCtx, "url")
	if err == nil && !ok {
		err = fmt.Errorf("url is null")
	}
	if err != nil {
		return "", nil, err
	}
	h := http.Header{}
	if f.headers == nil {
		return target, h, nil
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
	return target, h, nil
}

// run resolves the feed for one stream (or route) and runs the reader
// newReader makes on it: on one replica at a time when env has a lease,
// the reader then carrying on from where the last holder got to.
func (f *feed) run(ctx context.Context, env FeedEnv, newReader func(target string, h http.Header) Reader) {
	subject, err := f.Subject(env.StreamCtx)
	if err == nil {
		var target string
		var h http.Header
		if target, h, err = f.request(env.StreamCtx); err == nil {
			env.Log = env.Log.With().Str("url", redactURL(target)).Str("subject", subject).Logger()
			handle := publishMapped(env, &f.Mapping, &routing{defaultTo: subject})
			hold(ctx, env, leaseKey(env.Name, subject, target), func() Reader { return newReader(target, h) }, handle)
			return
		}
	}
	env.Status.set(StateStopped, err)
	env.Log.Error().Err(err).Msg("source cannot start")
}

// leaseKey names the lease of the feed whose identity parts give: for a
// poll or an upstream stream, its name, subject and target, so one whose
// upstream changes (a new config) gets a new lease and does not resume
// the old upstream's progress; for a source whose progress outlives its
// route's text (an outbox cursor, a stream id, still valid when the
// mapping changes), its route and what it reads, or a change of mapping
// would send a table again.
func leaseKey(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return "feed." + hex.EncodeToString(sum[:16])
}

// fetch sends req. Its errors leave the URL out: the source's log lines
// carry it, redacted.
func fetch(hc *http.Client, req *http.Request) (*http.Response, error) {
	resp, err := hc.Do(req)
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req.Method, err)
	}
	return resp, nil
}

// statusError sorts an upstream's answer for the runner: nil for 2xx, a
// RetryAfter for 429 and 503, an error for the rest.
func statusError(resp *http.Response) error {
	err := fmt.Errorf("%s: %s", resp.Request.Method, resp.Status)
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		return &RetryAfter{Err: err, After: retryAfter(resp.Header)}
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return err
	}
	return nil
}

// redactURL shows a URL without what may be a secret: the password and
// the values of the query (API keys often travel there).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.RawQuery != "" {
		q := u.Query()
		keys := make([]string, 0, len(q))
		for k := range q {
			keys = append(keys, url.QueryEscape(k)+"=REDACTED")
		}
		slices.Sort(keys)
		u.RawQuery = strings.Join(keys, "&")
	}
	return u.Redacted()
}
