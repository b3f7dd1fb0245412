package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/ssegate/ssegate/sources"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Route maps one URL path pattern to its sources.
type Route struct {
	// Path is a net/http ServeMux path pattern, such as /stocks/{symbol}.
	Path string
	// Params are the names of the path's wildcards, in order.
	Params []string

	Keepalive time.Duration // 0: no keepalive comments
	Retry     time.Duration // 0: no retry line
	History   int           // events kept per stream for resume (memory store)
	// JetStream, when set, keeps the history in a JetStream stream instead
	// of memory: event ids are stream sequences, valid on every replica
	// and across restarts.
	JetStream *JetStreamHistory
	Linger    time.Duration // how long a stream outlives its last client
	Buffer    int           // frames queued per client before it is dropped
	// SlowConsumer is what a client whose queue is full gets: Disconnect,
	// DropOldest or Latest.
	SlowConsumer string
	WriteTimeout time.Duration

	// Topics, when set, lets each client pick what its stream carries.
	Topics *Topics
	// Presence, when set, makes who is on the route's streams known.
	Presence *Presence

	// Auth names the auth blocks a client must pass one of; none: open.
	Auth []string
	// Allow, when set, is evaluated per request with path and auth in
	// scope, and per picked topic with topic too; false answers 403.
	Allow hcl.Expression

	MaxClients        int           // streams open on the route at once; 0: no limit
	MaxStreams        int           // streams held, open or lingering; 0: only the global bound
	MaxStreamDuration time.Duration // a stream's lifetime, before jitter; 0: unlimited
	CORS              *CORS         // nil: no cross-origin access

	Sources     []sources.Spec
	SourceKinds []string // each source's kind, as in its block

	// Fingerprint is the same for two routes decoded from the same text
	// (the route block, the auth blocks it names, the cors block it
	// inherits): a reload keeps such a route and its streams.
	Fingerprint string
	text        string

	// Range is where the route block is declared.
	Range hcl.Range
}

// Topics lets a client of a route pick what its stream carries, as
// /live?topic=AAPL&topic=MSFT: each value is a topic, validated like a
// path parameter and in scope as topic.name, so that the route's
// expressions map it into subjects (the config, never the client, decides
// what is reachable). A stream is one set of topics.
type Topics struct {
	Query string // the query parameter, repeated once per topic
	Max   int    // topics one connection may pick
	// Drop: a topic that allow refuses is left out and the stream goes
	// on with the others (its first event names them); otherwise the
	// request is answered 403.
	Drop  bool
	Range hcl.Range
}

// What a slow client gets (a route's slow_consumer).
const (
	// Disconnect ends its stream; it reconnects and resumes.
	Disconnect = "disconnect"
	// DropOldest drops its oldest queued events, and tells it which.
	DropOldest = "drop"
	// Latest keeps, of its queued events, only the newest of each subject
	// (conflation), and drops the oldest beyond that.
	Latest = "latest"
)

// DefaultMaxTopics is how many topics a connection may pick when the
// topics block does not say.
const DefaultMaxTopics = 20

// JetStreamHistory configures a route's history in JetStream.
type JetStreamHistory struct {
	// Stream names an existing stream to read; empty: ssegate creates or
	// updates one of its own for the route, with the limits below.
	Stream   string
	MaxMsgs  int64
	MaxAge   time.Duration
	MaxBytes int64
	// Replicas is how many NATS servers of a cluster keep the history: 3
	// survives losing one.
	Replicas int
}

var routeSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "keepalive"}, {Name: "retry"}, {Name: "history"},
		{Name: "linger"}, {Name: "buffer"}, {Name: "write_timeout"}, {Name: "slow_consumer"},
		{Name: "max_clients"}, {Name: "max_stream_duration"}, {Name: "max_streams"},
		{Name: "auth"}, {Name: "allow"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "source", LabelNames: []string{"kind"}}, {Type: "cors"}, {Type: "history"}, {Type: "topics"}, {Type: "presence"}},
}

var topicsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "query"}, {Name: "max"}, {Name: "refused"}},
}

// reservedQuery are query parameters ssegate reads itself.
var reservedQuery = []string{"ticket", "lastEventId"}

var historySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "store"}, {Name: "max_msgs"}, {Name: "max_age"}, {Name: "max_bytes"}, {Name: "stream"}, {Name: "replicas"},
	},
}

var paramPattern = regexp.MustCompile(`\{([^{}]*)\}`)

// blockText is the text of b, label and body included.
func (d *decoder) blockText(b *hcl.Block) string {
	end := b.DefRange.End.Byte
	if body, ok := b.Body.(*hclsyntax.Body); ok {
		end = body.SrcRange.End.Byte
	}
	start := b.DefRange.Start.Byte
	if start < 0 || end > len(d.src) || start > end {
		return ""
	}
	return string(d.src[start:end])
}

// fingerprint sums up what makes rt what it is: its block, the auth blocks
// it names and, without a cors block of its own, the top-level one. A
// reload keeps a route whose fingerprint did not change as it is.
func (d *decoder) fingerprint(rt *Route, cfg *Config, ownCORS bool, corsText string) {
	h := sha256.New()
	h.Write([]byte(rt.text))
	for _, name := range slices.Sorted(slices.Values(rt.Auth)) {
		if a := cfg.Auths[name]; a != nil {
			h.Write([]byte("\x00auth\x00" + a.Fingerprint))
		}
	}
	if !ownCORS {
		h.Write([]byte("\x00cors\x00" + corsText))
	}
	rt.Fingerprint = hex.EncodeToString(h.Sum(nil))
}

func (d *decoder) route(b *hcl.Block, authRefs map[*Route]hcl.Range) *Route {
	rt := &Route{
		text:         d.blockText(b),
		Path:         b.Labels[0],
		Keepalive:    DefaultKeepalive,
		History:      DefaultHistory,
		Linger:       DefaultLinger,
		Buffer:       DefaultBuffer,
		WriteTimeout: DefaultWriteTimeout,
		Range:        b.DefRange,
	}
	labelRange := b.LabelRanges[0]
	if err := checkPattern(rt.Path); err != nil {
		d.errorf(labelRange, "Invalid route path", "%s", err)
		return nil
	}
	for _, m := range paramPattern.FindAllStringSubmatch(rt.Path, -1) {
		if name := strings.TrimSuffix(m[1], "..."); name != "$" {
			rt.Params = append(rt.Params, name)
		}
	}

	content, diags := b.Body.Content(routeSchema)
	d.diags = append(d.diags, diags...)
	// A misspelt source block ("sourc") is the mistake to report, not
	// the missing source it leaves.
	unknownBlock := slices.ContainsFunc(diags, func(d *hcl.Diagnostic) bool { return d.Summary == "Unsupported block type" })
	a := content.Attributes
	// Keepalives more often than every second only cost bandwidth, and
	// retry is sent in whole milliseconds.
	d.duration(a, "keepalive", &rt.Keepalive, time.Second, true)
	d.duration(a, "retry", &rt.Retry, time.Millisecond, true)
	d.duration(a, "linger", &rt.Linger, 0, true)
	d.duration(a, "write_timeout", &rt.WriteTimeout, time.Millisecond, false)
	d.integer(a, "history", &rt.History, 0)
	d.integer(a, "buffer", &rt.Buffer, 1)
	rt.SlowConsumer = Disconnect
	d.oneOf(a, "slow_consumer", &rt.SlowConsumer, Disconnect, DropOldest, Latest)
	if attr, ok := a["auth"]; ok {
		rt.Auth = d.routeAuth(attr)
		authRefs[rt] = attr.Expr.Range()
	}
	for _, tb := range content.Blocks {
		if tb.Type != "topics" {
			continue
		}
		if rt.Topics != nil {
			d.duplicate(tb, "topics block", &hcl.Block{DefRange: rt.Topics.Range})
			continue
		}
		rt.Topics = d.topics(tb)
	}
	info := sources.RouteInfo{Path: rt.Path, Params: rt.Params, Auth: len(rt.Auth) > 0, Topics: rt.Topics != nil}
	if attr, ok := a["allow"]; ok {
		scope := info.SubjectScope()
		diags := scope.Check(attr.Expr, d.ctx)
		d.diags = append(d.diags, diags...)
		if !diags.HasErrors() {
			d.checkAllow(attr, scope)
		}
		rt.Allow = attr.Expr
	}
	d.integer(a, "max_clients", &rt.MaxClients, 0)
	d.integer(a, "max_streams", &rt.MaxStreams, 0)
	d.duration(a, "max_stream_duration", &rt.MaxStreamDuration, time.Second, true)

	var sourceBlocks hcl.Blocks
	var historyBlock *hcl.Block
	for _, sb := range content.Blocks {
		if sb.Type == "history" {
			if historyBlock != nil {
				d.duplicate(sb, "history block", historyBlock)
				continue
			}
			historyBlock = sb
			if attr, ok := a["history"]; ok {
				d.errorf(attr.NameRange, "History set twice", "history = N is the short form of a history block; use one.")
			}
			d.history(sb, rt)
			continue
		}
		if sb.Type == "topics" {
			continue
		}
		if sb.Type == "presence" {
			if rt.Presence != nil {
				d.duplicate(sb, "presence block", &hcl.Block{DefRange: rt.Presence.Range})
				continue
			}
			rt.Presence = d.presence(sb, rt)
			continue
		}
		if sb.Type != "cors" {
			sourceBlocks = append(sourceBlocks, sb)
			continue
		}
		if rt.CORS != nil {
			d.errorf(sb.DefRange, "Duplicate cors block", "A route has one cors block.")
			continue
		}
		rt.CORS = d.cors(sb)
	}
	var ownIDs *hcl.Block // the first source giving ids of its own making
	places := map[string]*hcl.Block{}
	for i, sb := range sourceBlocks {
		info.Index = i
		src, diags := sources.Decode(sb, d.ctx, info)
		d.diags = append(d.diags, diags...)
		if src == nil {
			continue
		}
		rt.Sources = append(rt.Sources, src)
		rt.SourceKinds = append(rt.SourceKinds, sb.Labels[0])
		if o, ok := src.(sources.OwnIDs); ok && o.OwnIDs() && !diags.HasErrors() {
			if ownIDs != nil {
				d.errorf(sb.DefRange, "Ids that can collide", "This source and the one at %s:%d both give their events ids of their own making (an outbox cursor, a stream entry id, a partition and offset), which can be equal; the history drops an event whose id it already holds. Give this one ids of its own, like id = \"b-${msg.id}\".", ownIDs.DefRange.Filename, ownIDs.DefRange.Start.Line)
			}
			ownIDs = sb
		}
		if p, ok := src.(sources.Positioned); ok && !diags.HasErrors() {
			key, what := p.ReadPlace()
			if first := places[key]; first != nil && key != "" {
				d.errorf(sb.DefRange, "Two sources read one place", "This source and the one at %s:%d both read %s: each would get part of the records, or overwrite the other's saved position. Read it once, or give this one a place of its own (another group, query or stream).", first.DefRange.Filename, first.DefRange.Start.Line, what)
			}
			places[key] = sb
		}
	}
	if len(sourceBlocks) == 0 && !unknownBlock {
		d.errorf(b.DefRange, "Route without a source", "Route %q has no source block, so its streams would never carry an event; add one, like source \"nats\" { subject = \"events\" }.", rt.Path)
	}
	return rt
}

// checkPattern accepts what net/http's ServeMux accepts as a path pattern,
// without a method or host: ssegate serves GET (and HEAD) on every route.
func checkPattern(path string) (err error) {
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("route path %q must start with \"/\" (no method or host)", path)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("route path %q: %v", path, r)
		}
	}()
	http.NewServeMux().Handle("GET "+path, http.NotFoundHandler())
	return nil
}

// checkRouteConflicts reports patterns that match the same requests with
// neither more specific, which ServeMux refuses: two routes, two webhooks,
// or a webhook and a route. They are few, so each pair is tried in a mux
// of its own to name both.
func (d *decoder) checkRouteConflicts(cfg *Config) {
	type served struct {
		patterns []string
		what     string
		rng      hcl.Range
	}
	var all []served
	for _, name := range slices.Sorted(maps.Keys(cfg.Auths)) {
		if a := cfg.Auths[name]; a.Ticket != nil {
			patterns := []string{"POST " + a.Ticket.Path}
			if cfg.CORS != nil {
				patterns = append(patterns, "OPTIONS "+a.Ticket.Path)
			}
			all = append(all, served{patterns, fmt.Sprintf("the ticket path of auth %q", name), a.Range})
		}
	}
	for _, rt := range cfg.Routes {
		patterns := []string{"GET " + rt.Path}
		if rt.CORS != nil {
			patterns = append(patterns, "OPTIONS "+rt.Path)
		}
		all = append(all, served{patterns, fmt.Sprintf("route %q", rt.Path), rt.Range})
		for _, src := range rt.Sources {
			if in, ok := src.(sources.Ingress); ok {
				all = append(all, served{in.Patterns(), fmt.Sprintf("the webhook of route %q", rt.Path), src.DefRange()})
			}
		}
	}
	for _, p := range cfg.Pages {
		all = append(all, served{[]string{p.Pattern()}, fmt.Sprintf("page %q", p.Path), p.Range})
	}
	for i, s := range all {
		for _, prev := range all[:i] {
			if conflict(prev.patterns, s.patterns) {
				d.errorf(s.rng, "Conflicting paths", "%s matches the same requests as %s at %s, and neither is more specific.", upperFirst(s.what), prev.what, pos(prev.rng))
			}
		}
	}
}

// checkControlSubject reports sources that could read or publish under
// the control subject: a browser would see revocations (claims and all),
// or a webhook's sender could end streams. A source's pattern covers the
// subjects of every stream; one that cannot be made (a subject of
// partial tokens) is checked as each stream opens.
func (d *decoder) checkControlSubject(cfg *Config) {
	control := cfg.NATS.ControlSubject + ".>"
	for _, rt := range cfg.Routes {
		for _, src := range rt.Sources {
			if p, err := src.Pattern(d.ctx); err == nil && sources.SubjectsOverlap(p, control) {
				d.errorf(src.DefRange(), "Subject under the control subject", "This source's subjects (%s) can fall under %s, where replicas take revocations: its streams would read them, or its events could end streams. Give it subjects of their own, or move control_subject in the nats block.", p, control)
			}
		}
		if rt.Presence == nil || rt.Presence.Subject == nil {
			continue
		}
		if p, err := d.presencePattern(rt.Presence, rt, "*"); err == nil && sources.SubjectsOverlap(p, control) {
			d.errorf(rt.Presence.Subject.Range(), "Subject under the control subject", "The presence subject (%s) can fall under %s, where replicas take revocations. Give it a subject of its own, or move control_subject in the nats block.", p, control)
		}
	}
}

func upperFirst(s string) string { return strings.ToUpper(s[:1]) + s[1:] }

// conflict reports whether ServeMux refuses a and b together; a pattern
// refused on its own is the source block's to report.
func conflict(a, b []string) (conflicts bool) {
	defer func() {
		r := recover()
		conflicts = r != nil && strings.Contains(fmt.Sprint(r), "conflicts with")
	}()
	mux := http.NewServeMux()
	for _, p := range slices.Concat(a, b) {
		mux.Handle(p, http.NotFoundHandler())
	}
	return false
}

// checkAllow evaluates allow with unknown variables: an expression that
// cannot be true or false fails now, not for every client.
func (d *decoder) checkAllow(attr *hcl.Attribute, scope sources.Scope) {
	ctx := d.ctx.NewChild()
	ctx.Variables = map[string]cty.Value{}
	for root := range scope {
		ctx.Variables[root] = cty.DynamicVal
	}
	v, diags := attr.Expr.Value(ctx)
	if diags.HasErrors() {
		d.diags = append(d.diags, diags...)
		return
	}
	if _, err := convert.Convert(v, cty.Bool); err != nil {
		d.errorf(attr.Expr.Range(), "Invalid allow", "allow must be true or false; this gives %s.", v.Type().FriendlyName())
	}
}

// topics reads a topics block.
func (d *decoder) topics(b *hcl.Block) *Topics {
	content, diags := b.Body.Content(topicsSchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes
	t := &Topics{Query: "topic", Max: DefaultMaxTopics, Range: b.DefRange}
	d.str(a, "query", &t.Query)
	if attr, ok := a["query"]; ok && (t.Query == "" || url.QueryEscape(t.Query) != t.Query || slices.Contains(reservedQuery, t.Query)) {
		d.errorf(attr.Expr.Range(), "Invalid query parameter", "query = %q must be a plain name (letters, digits, '-', '_', '.'), and not one ssegate reads itself (%q).", t.Query, reservedQuery)
	}
	// A stream's topics are all held, subscribed and evaluated per
	// connection: the cap bounds what one request can make.
	d.integer(a, "max", &t.Max, 1)
	if attr, ok := a["max"]; ok && t.Max > 1000 {
		d.errorf(attr.Expr.Range(), "Invalid max", "max is at most 1000 topics per connection.")
	}
	refused := "fail"
	d.oneOf(a, "refused", &refused, "fail", "drop")
	t.Drop = refused == "drop"
	return t
}

// history reads a history block: memory (max_msgs events, as history = N)
// or jetstream.
func (d *decoder) history(b *hcl.Block, rt *Route) {
	content, diags := b.Body.Content(historySchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes
	store := "memory"
	if before := len(d.diags); a["store"] != nil {
		if d.oneOf(a, "store", &store, "memory", "jetstream"); len(d.diags) > before {
			return
		}
	}
	if store == "memory" {
		for _, name := range []string{"max_age", "max_bytes", "stream", "replicas"} {
			if attr, ok := a[name]; ok {
				d.errorf(attr.NameRange, "Not for memory history", "%s applies to store = \"jetstream\"; memory history keeps max_msgs events.", name)
			}
		}
		d.integer(a, "max_msgs", &rt.History, 0)
		return
	}
	js := &JetStreamHistory{Replicas: 1}
	d.integer(a, "replicas", &js.Replicas, 1)
	if attr, ok := a["replicas"]; ok && js.Replicas > 5 {
		d.errorf(attr.Expr.Range(), "Invalid replicas", "JetStream keeps at most 5 replicas of a stream.")
	}
	var maxMsgs, maxBytes int
	d.integer(a, "max_msgs", &maxMsgs, 0)
	d.integer(a, "max_bytes", &maxBytes, 0)
	js.MaxMsgs, js.MaxBytes = int64(maxMsgs), int64(maxBytes)
	d.duration(a, "max_age", &js.MaxAge, time.Second, true)
	d.str(a, "stream", &js.Stream)
	if js.Stream != "" {
		for _, name := range []string{"max_msgs", "max_age", "max_bytes", "replicas"} {
			if attr, ok := a[name]; ok {
				d.errorf(attr.NameRange, "Limits of a stream ssegate does not own", "With stream = %q ssegate only reads that stream; set %s on the stream itself.", js.Stream, name)
			}
		}
	}
	rt.JetStream = js
}
