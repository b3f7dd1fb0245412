package config

import (
	"crypto/tls"
	"net"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/rs/zerolog"
)

// Defaults for settings the config leaves out.
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultShutdownTimeout = 10 * time.Second
	DefaultKeepalive       = 15 * time.Second
	DefaultHistory         = 100
	DefaultLinger          = 5 * time.Minute
	DefaultBuffer          = 256
	DefaultWriteTimeout    = 10 * time.Second
	DefaultNewStreamsPerIP = 50
)

// TLS names the certificate and key files.
type TLS struct {
	CertFile, KeyFile string
}

// Admin is the admin block.
type Admin struct {
	Listen    string
	Auth      []string // auth blocks, any of which lets a request in
	AuthRange hcl.Range
}

// Log configures logging.
type Log struct {
	Level  zerolog.Level
	Format string // "console" or "json"
}

var tlsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "cert_file", Required: true}, {Name: "key_file", Required: true}},
}

var adminSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "listen", Required: true}, {Name: "auth"}},
}

var logSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "level"}, {Name: "format"}},
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
		d.errorf(attr.Expr.Range(), "Admin open to the network", "The admin listener on %q serves /reload, /revoke, /tail and /debug/pprof to anyone who reaches it. Listen on 127.0.0.1, or add auth = \"NAME\" naming an auth block (the /healthz and /readyz probes stay open).", a.Listen)
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
