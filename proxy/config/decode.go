package config

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/rs/zerolog"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/gocty"

	"github.com/ssegate/ssegate/sources"
)

var fileSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "listen"}, {Name: "shutdown_timeout"}, {Name: "shutdown_delay"}, {Name: "h2c"},
		{Name: "max_connections"}, {Name: "max_connections_per_ip"}, {Name: "trusted_proxies"}, {Name: "allow_no_routes"},
		{Name: "max_streams"}, {Name: "new_streams_per_ip"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "log"},
		{Type: "nats"},
		{Type: "tls"},
		{Type: "cors"},
		{Type: "admin"},
		{Type: "auth", LabelNames: []string{"kind", "name"}},
		{Type: "route", LabelNames: []string{"path"}},
		{Type: "page", LabelNames: []string{"path"}},
	},
}

var pageSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "file", Required: true}, {Name: "content_type"}},
}

var tlsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "cert_file", Required: true}, {Name: "key_file", Required: true}},
}

var adminSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "listen", Required: true}, {Name: "auth"}},
}

var corsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "allow_origins", Required: true}, {Name: "allow_credentials"}, {Name: "max_age"}},
}

var logSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "level"}, {Name: "format"}},
}

var natsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "url"}, {Name: "name"}, {Name: "creds_file"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "embedded"}},
}

var embeddedSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "listen"}, {Name: "store_dir"}, {Name: "server_name"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "cluster"}},
}

var clusterSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "name"}, {Name: "listen", Required: true}, {Name: "routes"}},
}

var routeSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "keepalive"}, {Name: "retry"}, {Name: "history"},
		{Name: "linger"}, {Name: "buffer"}, {Name: "write_timeout"},
		{Name: "max_clients"}, {Name: "max_stream_duration"}, {Name: "max_streams"},
		{Name: "auth"}, {Name: "allow"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "source", LabelNames: []string{"kind"}}, {Type: "cors"}, {Type: "history"}},
}

var historySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "store"}, {Name: "max_msgs"}, {Name: "max_age"}, {Name: "max_bytes"}, {Name: "stream"}, {Name: "replicas"},
	},
}

// decoder evaluates attributes and collects every diagnostic on the way,
// so one run reports all problems.
type decoder struct {
	ctx   *hcl.EvalContext
	dir   string // the config file's, for relative paths
	src   []byte // the config file's text
	diags hcl.Diagnostics
}

func decode(body hcl.Body, dir string, src []byte) (*Config, hcl.Diagnostics) {
	d := &decoder{ctx: &hcl.EvalContext{Functions: functions(dir)}, dir: dir, src: src}
	cfg := &Config{
		Listen:          DefaultListen,
		ShutdownTimeout: DefaultShutdownTimeout,
		MaxStreams:      DefaultMaxStreams(),
		NewStreamsPerIP: DefaultNewStreamsPerIP,
		Log:             Log{Level: zerolog.InfoLevel, Format: "console"},
		EvalContext:     d.ctx,
	}
	content, diags := body.Content(fileSchema)
	d.diags = diags
	d.address(content.Attributes, "listen", &cfg.Listen, `"127.0.0.1:8080" or ":8080"`)
	d.duration(content.Attributes, "shutdown_timeout", &cfg.ShutdownTimeout, time.Second, false)
	d.duration(content.Attributes, "shutdown_delay", &cfg.ShutdownDelay, time.Second, true)
	d.integer(content.Attributes, "max_connections", &cfg.MaxConnections, 0)
	d.integer(content.Attributes, "max_connections_per_ip", &cfg.MaxConnectionsPerIP, 0)
	d.boolean(content.Attributes, "h2c", &cfg.H2C)
	d.prefixes(content.Attributes, "trusted_proxies", &cfg.TrustedProxies)
	d.boolean(content.Attributes, "allow_no_routes", &cfg.AllowNoRoutes)
	d.integer(content.Attributes, "max_streams", &cfg.MaxStreams, 1)
	d.integer(content.Attributes, "new_streams_per_ip", &cfg.NewStreamsPerIP, 0)
	var defaultCORS *CORS
	cfg.Auths = map[string]*Auth{}
	authRefs := map[*Route]hcl.Range{}

	seen := map[string]*hcl.Block{}
	routes := map[string]*hcl.Block{}
	for _, b := range content.Blocks {
		if b.Type == "route" {
			if prev, dup := routes[b.Labels[0]]; dup {
				d.duplicate(b, fmt.Sprintf("route %q", b.Labels[0]), prev)
				continue
			}
			routes[b.Labels[0]] = b
			if rt := d.route(b, authRefs); rt != nil {
				cfg.Routes = append(cfg.Routes, rt)
			}
			continue
		}
		if b.Type == "page" {
			if p := d.page(b); p != nil {
				cfg.Pages = append(cfg.Pages, p)
			}
			continue
		}
		if b.Type == "auth" {
			if prev, dup := cfg.Auths[b.Labels[1]]; dup {
				d.errorf(b.DefRange, "Duplicate auth", "An auth block named %q was already defined at %s.", b.Labels[1], pos(prev.Range))
				continue
			}
			if a := d.auth(b); a != nil {
				cfg.Auths[a.Name] = a
			}
			continue
		}
		if prev, dup := seen[b.Type]; dup {
			d.duplicate(b, b.Type+" block", prev)
			continue
		}
		seen[b.Type] = b
		switch b.Type {
		case "log":
			d.log(b, &cfg.Log)
		case "nats":
			d.nats(b, &cfg.NATS)
		case "tls":
			cfg.TLS = d.tls(b)
			if cfg.H2C {
				d.errorf(b.DefRange, "TLS with h2c", "h2c serves HTTP/2 without TLS, for a proxy that terminates TLS in front; with a tls block HTTP/2 is served over TLS already. Remove one.")
			}
		case "cors":
			defaultCORS = d.cors(b)
			cfg.CORS = defaultCORS
		case "admin":
			cfg.Admin = d.admin(b, cfg)
		}
	}
	d.checkAuthRefs(cfg, authRefs)
	// The top-level cors block is the default of routes without their own.
	corsText := ""
	if b := seen["cors"]; b != nil {
		corsText = d.blockText(b)
	}
	for _, rt := range cfg.Routes {
		own := rt.CORS != nil
		if !own {
			rt.CORS = defaultCORS
		}
		d.fingerprint(rt, cfg, own, corsText)
	}
	d.checkRouteConflicts(cfg)
	if len(routes) == 0 && !cfg.AllowNoRoutes {
		d.errorf(body.MissingItemRange(), "No routes", "This config serves nothing: it has no route block. An emptied or half-written file looks like this, and reloaded it would end every stream; if no routes is what you mean, set allow_no_routes = true.")
	}
	return cfg, d.diags
}

func (d *decoder) log(b *hcl.Block, l *Log) {
	content, diags := b.Body.Content(logSchema)
	d.diags = append(d.diags, diags...)
	if attr, ok := content.Attributes["level"]; ok {
		var s string
		if d.evalString(attr, &s) {
			lvl, err := zerolog.ParseLevel(s)
			if err != nil || s == "" || lvl == zerolog.NoLevel {
				d.errorf(attr.Expr.Range(), "Invalid log level", "%q is not a log level; use one of \"trace\", \"debug\", \"info\", \"warn\", \"error\".", s)
			} else {
				l.Level = lvl
			}
		}
	}
	d.oneOf(content.Attributes, "format", &l.Format, "console", "json")
}

func (d *decoder) nats(b *hcl.Block, n *NATS) {
	content, diags := b.Body.Content(natsSchema)
	d.diags = append(d.diags, diags...)
	d.str(content.Attributes, "url", &n.URL)
	d.str(content.Attributes, "name", &n.Name)
	d.str(content.Attributes, "creds_file", &n.CredsFile)
	var prev *hcl.Block
	for _, eb := range content.Blocks {
		if prev != nil {
			d.duplicate(eb, "embedded block", prev)
			continue
		}
		prev = eb
		ec, diags := eb.Body.Content(embeddedSchema)
		d.diags = append(d.diags, diags...)
		d.address(ec.Attributes, "listen", &n.Embedded.Listen, `"127.0.0.1:4222"`)
		d.str(ec.Attributes, "store_dir", &n.Embedded.StoreDir)
		d.str(ec.Attributes, "server_name", &n.Embedded.ServerName)
		for i, cb := range ec.Blocks {
			if i > 0 {
				d.duplicate(cb, "cluster block", ec.Blocks[0])
				continue
			}
			n.Embedded.Cluster = d.cluster(cb)
		}
		if n.URL != "" {
			d.errorf(eb.DefRange, "Embedded server with a URL", "With nats.url set, ssegate connects to that server and starts none of its own: remove the url or the embedded block.")
		}
	}
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
	if attr, ok := a["auth"]; ok {
		rt.Auth = d.routeAuth(attr)
		authRefs[rt] = attr.Expr.Range()
	}
	if attr, ok := a["allow"]; ok {
		scope := sources.RouteInfo{Params: rt.Params, Auth: len(rt.Auth) > 0}.SubjectScope()
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
	for i, sb := range sourceBlocks {
		src, diags := sources.Decode(sb, d.ctx, sources.RouteInfo{Path: rt.Path, Params: rt.Params, Index: i, Auth: len(rt.Auth) > 0})
		d.diags = append(d.diags, diags...)
		if src != nil {
			rt.Sources = append(rt.Sources, src)
			rt.SourceKinds = append(rt.SourceKinds, sb.Labels[0])
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

// page reads a page block and its file (a regular file of at most
// MaxFileSize bytes, relative to the config's directory).
func (d *decoder) page(b *hcl.Block) *Page {
	content, diags := b.Body.Content(pageSchema)
	d.diags = append(d.diags, diags...)
	p := &Page{Path: b.Labels[0], Range: b.DefRange}
	if p.Path != "/" && (!strings.HasPrefix(p.Path, "/") || path.Clean(p.Path) != p.Path || strings.ContainsAny(p.Path, "{} \t")) {
		d.errorf(b.LabelRanges[0], "Invalid page path", "page %q: a page is served at a clean absolute path without parameters or a trailing slash, like \"/\" or \"/demo.html\".", p.Path)
		return nil
	}
	var file string
	d.str(content.Attributes, "file", &file)
	d.str(content.Attributes, "content_type", &p.ContentType)
	attr, ok := content.Attributes["file"]
	if !ok || file == "" {
		return nil
	}
	if !filepath.IsAbs(file) {
		file = filepath.Join(d.dir, file)
	}
	body, err := readRegular(file, MaxFileSize)
	if err != nil {
		d.errorf(attr.Expr.Range(), "Unreadable page", "%v", err)
		return nil
	}
	p.Body = body
	if p.ContentType == "" {
		if p.ContentType = mime.TypeByExtension(filepath.Ext(file)); p.ContentType == "" {
			p.ContentType = "application/octet-stream"
		}
	}
	return p
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

func (d *decoder) duplicate(b *hcl.Block, what string, prev *hcl.Block) {
	d.errorf(b.DefRange, "Duplicate "+strings.SplitN(what, " ", 2)[0], "A %s was already defined at %s.", what, pos(prev.DefRange))
}

// pos renders where a range starts as file:line:col.
func pos(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

func (d *decoder) errorf(rng hcl.Range, summary, format string, args ...any) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  rng.Ptr(),
	})
}

// evalString evaluates attr as a string; false means a diagnostic was
// recorded.
func (d *decoder) evalString(attr *hcl.Attribute, dst *string) bool {
	v, diags := attr.Expr.Value(d.ctx)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return false
	}
	v, err := convert.Convert(v, cty.String)
	if err != nil || v.IsNull() {
		d.errorf(attr.Expr.Range(), "Incorrect attribute value type", "%s must be a string.", attr.Name)
		return false
	}
	*dst = v.AsString()
	return true
}

func (d *decoder) str(attrs hcl.Attributes, name string, dst *string) {
	if attr, ok := attrs[name]; ok {
		d.evalString(attr, dst)
	}
}

func (d *decoder) oneOf(attrs hcl.Attributes, name string, dst *string, allowed ...string) {
	attr, ok := attrs[name]
	var s string
	if !ok || !d.evalString(attr, &s) {
		return
	}
	for _, a := range allowed {
		if s == a {
			*dst = s
			return
		}
	}
	d.errorf(attr.Expr.Range(), "Invalid "+name, "%q is not allowed; use one of %q.", s, allowed)
}

// duration reads a duration of at least least; when off is true, zero is
// allowed too and turns the setting off.
func (d *decoder) duration(attrs hcl.Attributes, name string, dst *time.Duration, least time.Duration, off bool) {
	attr, ok := attrs[name]
	var s string
	if !ok || !d.evalString(attr, &s) {
		return
	}
	v, err := time.ParseDuration(s)
	switch {
	case err != nil || v < 0:
		d.errorf(attr.Expr.Range(), "Invalid duration", "%s = %q is not a duration; write a number with a unit, like \"15s\", \"500ms\" or \"5m\".", name, s)
	case v == 0 && off:
		*dst = 0
	case v < least || v == 0:
		also := ""
		if off {
			also = "\"0s\" to turn it off, or "
		}
		d.errorf(attr.Expr.Range(), "Duration too short", "%s = %q is too short; use %sat least %q.", name, s, also, least.String())
	default:
		*dst = v
	}
}

// address reads a listen address: host:port with a numeric port, where
// port 0 picks a free one.
func (d *decoder) address(attrs hcl.Attributes, name string, dst *string, example string) {
	attr, ok := attrs[name]
	var s string
	if !ok || !d.evalString(attr, &s) {
		return
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		d.errorf(attr.Expr.Range(), "Invalid listen address", "%s = %q is not host:port; write it like %s.", name, s, example)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		d.errorf(attr.Expr.Range(), "Invalid listen address", "%s = %q: port %q is not a number from 0 to 65535.", name, s, port)
		return
	}
	*dst = s
}

// value evaluates attribute name when present; false means it is absent
// or a diagnostic was recorded.
func (d *decoder) value(attrs hcl.Attributes, name string) (cty.Value, *hcl.Attribute, bool) {
	attr, ok := attrs[name]
	if !ok {
		return cty.NilVal, nil, false
	}
	v, diags := attr.Expr.Value(d.ctx)
	d.diags = append(d.diags, diags...)
	return v, attr, !diags.HasErrors()
}

func (d *decoder) integer(attrs hcl.Attributes, name string, dst *int, minimum int) {
	v, attr, ok := d.value(attrs, name)
	if !ok {
		return
	}
	var n int
	if err := gocty.FromCtyValue(v, &n); err != nil || n < minimum {
		d.errorf(attr.Expr.Range(), "Invalid "+name, "%s must be a whole number of at least %d.", name, minimum)
		return
	}
	*dst = n
}

func (d *decoder) boolean(attrs hcl.Attributes, name string, dst *bool) {
	v, attr, ok := d.value(attrs, name)
	if !ok {
		return
	}
	if err := gocty.FromCtyValue(v, dst); err != nil {
		d.errorf(attr.Expr.Range(), "Incorrect attribute value type", "%s must be true or false.", name)
	}
}

func (d *decoder) strings(attrs hcl.Attributes, name string, dst *[]string) bool {
	v, attr, ok := d.value(attrs, name)
	if !ok {
		return false
	}
	lv, err := convert.Convert(v, cty.List(cty.String))
	if err == nil && !lv.IsNull() {
		err = gocty.FromCtyValue(lv, dst)
	}
	if err != nil || lv.IsNull() {
		d.errorf(attr.Expr.Range(), "Incorrect attribute value type", "%s must be a list of strings.", name)
		return false
	}
	return true
}

// prefixes reads addresses and CIDR ranges.
func (d *decoder) prefixes(attrs hcl.Attributes, name string, dst *[]netip.Prefix) {
	var ss []string
	if !d.strings(attrs, name, &ss) {
		return
	}
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				d.errorf(attrs[name].Expr.Range(), "Invalid address", "%q is neither an IP address nor a CIDR range like \"10.0.0.0/8\".", s)
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		*dst = append(*dst, p.Masked())
	}
}

func (d *decoder) tls(b *hcl.Block) *TLS {
	content, diags := b.Body.Content(tlsSchema)
	d.diags = append(d.diags, diags...)
	t := &TLS{}
	d.str(content.Attributes, "cert_file", &t.CertFile)
	d.str(content.Attributes, "key_file", &t.KeyFile)
	for _, f := range []*string{&t.CertFile, &t.KeyFile} {
		if *f != "" && !filepath.IsAbs(*f) {
			*f = filepath.Join(d.dir, *f)
		}
	}
	// What run would fail on after NATS started is found here, with a
	// position, by validate too.
	if attr, ok := content.Attributes["cert_file"]; ok && t.CertFile != "" && t.KeyFile != "" {
		if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
			d.errorf(attr.Expr.Range(), "Unusable certificate", "cert_file and key_file do not make a TLS certificate: %v. Both must be PEM files that exist, and the key the certificate's.", err)
		}
	}
	return t
}

func (d *decoder) admin(b *hcl.Block, cfg *Config) *Admin {
	content, diags := b.Body.Content(adminSchema)
	d.diags = append(d.diags, diags...)
	a := &Admin{}
	d.address(content.Attributes, "listen", &a.Listen, `"127.0.0.1:9090"`)
	if attr, ok := content.Attributes["listen"]; ok && a.Listen != "" && a.Listen == cfg.Listen {
		d.errorf(attr.Expr.Range(), "Admin on the public listener", "The admin listener must be apart from the public one (%q), so that health and metrics are not served to browsers; pick another address, usually on 127.0.0.1 or a private network.", cfg.Listen)
	}
	if attr, ok := content.Attributes["auth"]; ok {
		a.Auth, a.AuthRange = d.routeAuth(attr), attr.Expr.Range()
	}
	if attr, ok := content.Attributes["listen"]; ok && a.Listen != "" && len(a.Auth) == 0 && !loopbackAddress(a.Listen) {
		d.errorf(attr.Expr.Range(), "Admin open to the network", "The admin listener on %q serves /reload, /tail and /debug/pprof to anyone who reaches it. Listen on 127.0.0.1, or add auth = \"NAME\" naming an auth block (the /healthz and /readyz probes stay open).", a.Listen)
	}
	return a
}

// loopbackAddress reports whether a listen address is reachable from
// this host only: an IP of the loopback range, or localhost.
func loopbackAddress(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func (d *decoder) cors(b *hcl.Block) *CORS {
	content, diags := b.Body.Content(corsSchema)
	d.diags = append(d.diags, diags...)
	c := &CORS{}
	a := content.Attributes
	d.boolean(a, "allow_credentials", &c.AllowCredentials)
	d.duration(a, "max_age", &c.MaxAge, time.Second, true)
	if !d.strings(a, "allow_origins", &c.AllowOrigins) {
		return c
	}
	rng := a["allow_origins"].Expr.Range()
	if len(c.AllowOrigins) == 0 {
		d.errorf(rng, "No origins", "allow_origins must name at least one origin, like \"https://app.example.com\".")
	}
	for _, o := range c.AllowOrigins {
		if o == "*" {
			if c.AllowCredentials {
				d.errorf(rng, "Any origin with credentials", "Browsers refuse \"*\" when credentials are allowed, and allowing every site to read a signed-in user's streams would leak them: list the origins, or set allow_credentials = false.")
			}
			continue
		}
		if err := checkOrigin(o); err != nil {
			d.errorf(rng, "Invalid origin", "%s", err)
		}
	}
	return c
}

// checkOrigin accepts scheme://host[:port], where host may start with "*."
// to match any subdomain.
func checkOrigin(o string) error {
	u, err := url.Parse(strings.Replace(o, "://*.", "://wildcard.", 1))
	if err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("%q is not an origin; write it like \"https://app.example.com\" or \"https://*.example.com\", without a path", o)
	}
	if o != strings.ToLower(o) {
		return fmt.Errorf("%q: browsers send origins in lower case", o)
	}
	return nil
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

// history reads a history block: memory (max_msgs events, as history = N)
// or jetstream.
func (d *decoder) history(b *hcl.Block, rt *Route) {
	content, diags := b.Body.Content(historySchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes
	store := "memory"
	if v, attr, ok := d.value(a, "store"); ok {
		if v.Type() != cty.String || v.IsNull() || (v.AsString() != "memory" && v.AsString() != "jetstream") {
			d.errorf(attr.Expr.Range(), "Invalid store", "store is \"memory\" or \"jetstream\".")
			return
		}
		store = v.AsString()
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

func (d *decoder) cluster(b *hcl.Block) *EmbeddedCluster {
	content, diags := b.Body.Content(clusterSchema)
	d.diags = append(d.diags, diags...)
	c := &EmbeddedCluster{Name: "ssegate"}
	a := content.Attributes
	d.str(a, "name", &c.Name)
	d.address(a, "listen", &c.Listen, `"0.0.0.0:6222"`)
	if d.strings(a, "routes", &c.Routes) {
		for _, r := range c.Routes {
			if u, err := url.Parse(r); err != nil || u.Scheme != "nats" || u.Host == "" {
				d.errorf(a["routes"].Expr.Range(), "Invalid route", "%q: routes are the other nodes' cluster addresses, like \"nats://edge-2:6222\".", r)
			}
		}
	}
	return c
}
