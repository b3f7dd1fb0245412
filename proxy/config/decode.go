package config

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/rs/zerolog"
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
		NATS:            NATS{ControlSubject: DefaultControlSubject},
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
	d.checkControlSubject(cfg)
	if len(routes) == 0 && !cfg.AllowNoRoutes {
		d.errorf(body.MissingItemRange(), "No routes", "This config serves nothing: it has no route block. An emptied or half-written file looks like this, and reloaded it would end every stream; if no routes is what you mean, set allow_no_routes = true.")
	}
	return cfg, d.diags
}
