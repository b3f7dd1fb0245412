package config

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/gocty"

	"github.com/ssegate/ssegate/proxy/auth"
)

var ticketBlock = []hcl.BlockHeaderSchema{{Type: "ticket"}}

var authSchemas = map[string]*hcl.BodySchema{
	"bearer": {Attributes: []hcl.AttributeSchema{{Name: "tokens", Required: true}}},
	"jwt": {Attributes: []hcl.AttributeSchema{
		{Name: "hmac_secret"}, {Name: "public_key_file"}, {Name: "jwks_url"},
		{Name: "algorithms"}, {Name: "issuer"}, {Name: "audience"}, {Name: "leeway"},
		{Name: "header"}, {Name: "cookie"}, {Name: "query_param"},
	}, Blocks: ticketBlock},
	"forward": {Attributes: []hcl.AttributeSchema{
		{Name: "url", Required: true}, {Name: "forward_headers"}, {Name: "copy_headers"},
		{Name: "cache_ttl"}, {Name: "timeout"},
	}, Blocks: ticketBlock},
}

var ticketSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "ttl"}, {Name: "path"}}}

// Defaults of auth blocks.
const (
	DefaultForwardTimeout = 5 * time.Second
	DefaultTicketTTL      = 30 * time.Second
)

// algorithmFamilies maps each JWT algorithm to the kind of key it needs.
var algorithmFamilies = map[string]string{
	"HS256": "hmac", "HS384": "hmac", "HS512": "hmac",
	"RS256": "rsa", "RS384": "rsa", "RS512": "rsa",
	"PS256": "rsa", "PS384": "rsa", "PS512": "rsa",
	"ES256": "ecdsa", "ES384": "ecdsa", "ES512": "ecdsa",
	"EdDSA": "ed25519",
}

var keyNames = map[string]string{"hmac": "a shared secret", "rsa": "an RSA key", "ecdsa": "an ECDSA key", "ed25519": "an Ed25519 key"}

// authName is what an auth block may be called: it appears in paths.
var authName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func (d *decoder) auth(b *hcl.Block) *Auth {
	a := &Auth{Kind: b.Labels[0], Name: b.Labels[1], Range: b.DefRange}
	sum := sha256.Sum256([]byte(d.blockText(b)))
	a.Fingerprint = hex.EncodeToString(sum[:])
	if !authName.MatchString(a.Name) {
		d.errorf(b.LabelRanges[1], "Invalid auth name", "%q: an auth block's name is letters, digits, \"-\" and \"_\", like \"users\".", a.Name)
		return nil
	}
	schema, ok := authSchemas[a.Kind]
	if !ok {
		d.errorf(b.LabelRanges[0], "Unknown auth kind", "There is no auth kind %q; the kinds are \"bearer\", \"jwt\" and \"forward\".", a.Kind)
		return nil
	}
	content, diags := b.Body.Content(schema)
	d.diags = append(d.diags, diags...)
	attrs := content.Attributes
	switch a.Kind {
	case "bearer":
		if d.strings(attrs, "tokens", &a.Tokens) && (len(a.Tokens) == 0 || slices.Contains(a.Tokens, "")) {
			d.errorf(attrs["tokens"].Expr.Range(), "Empty token", "tokens must hold at least one token, and no empty one.")
		}
	case "jwt":
		a.JWT = d.jwt(b, attrs)
	case "forward":
		a.Forward = d.forward(attrs)
	}
	for i, tb := range content.Blocks {
		if i > 0 {
			d.errorf(tb.DefRange, "Duplicate ticket block", "An auth block has one ticket block.")
			continue
		}
		a.Ticket = d.ticket(tb, a.Name)
	}
	return a
}

func (d *decoder) forward(attrs hcl.Attributes) *auth.ForwardConfig {
	f := &auth.ForwardConfig{ForwardHeaders: []string{"Authorization", "Cookie"}, Timeout: DefaultForwardTimeout}
	d.str(attrs, "url", &f.URL)
	if u, err := url.Parse(f.URL); attrs["url"] != nil && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		d.errorf(attrs["url"].Expr.Range(), "Invalid URL", "url must be an http or https URL of the auth service.")
	}
	d.strings(attrs, "forward_headers", &f.ForwardHeaders)
	d.strings(attrs, "copy_headers", &f.CopyHeaders)
	d.duration(attrs, "cache_ttl", &f.CacheTTL, time.Second, true)
	d.duration(attrs, "timeout", &f.Timeout, time.Millisecond, false)
	return f
}

func (d *decoder) ticket(b *hcl.Block, authName string) *Ticket {
	content, diags := b.Body.Content(ticketSchema)
	d.diags = append(d.diags, diags...)
	t := &Ticket{TTL: DefaultTicketTTL, Path: "/ssegate/tickets/" + authName}
	d.duration(content.Attributes, "ttl", &t.TTL, time.Second, false)
	d.str(content.Attributes, "path", &t.Path)
	if attr, ok := content.Attributes["path"]; ok && (!strings.HasPrefix(t.Path, "/") || strings.ContainsAny(t.Path, "{} ")) {
		d.errorf(attr.Expr.Range(), "Invalid ticket path", "path must be a plain absolute path, like \"/tickets\".")
	}
	return t
}

func (d *decoder) jwt(b *hcl.Block, attrs hcl.Attributes) *auth.JWTConfig {
	j := &auth.JWTConfig{}
	var secret, keyFile string
	d.str(attrs, "hmac_secret", &secret)
	d.str(attrs, "public_key_file", &keyFile)
	d.str(attrs, "jwks_url", &j.JWKSURL)
	d.str(attrs, "issuer", &j.Issuer)
	d.str(attrs, "audience", &j.Audience)
	d.duration(attrs, "leeway", &j.Leeway, 0, true)
	// The header is where an API client sends a token: read unless the
	// block says header = "".
	j.Header = "Authorization"
	d.str(attrs, "header", &j.Header)
	d.str(attrs, "cookie", &j.Cookie)
	d.str(attrs, "query_param", &j.QueryParam)
	if attr, ok := attrs["header"]; ok && j.Header == "" && j.Cookie == "" && j.QueryParam == "" {
		d.errorf(attr.Expr.Range(), "No place for the token", "With header = \"\" and no cookie or query_param, no request can carry a token; name at least one place.")
	}

	sources := 0
	family := ""
	if attr, ok := attrs["hmac_secret"]; ok {
		sources++
		family = "hmac"
		if len(secret) < 32 {
			d.errorf(attr.Expr.Range(), "Short secret", "An HMAC secret of %d bytes can be guessed offline from one token; use at least 32 random bytes.", len(secret))
		}
		j.HMACSecret = []byte(secret)
	}
	if attr, ok := attrs["public_key_file"]; ok {
		sources++
		if !filepath.IsAbs(keyFile) {
			keyFile = filepath.Join(d.dir, keyFile)
		}
		key, fam, err := readPublicKey(keyFile)
		if err != nil {
			d.errorf(attr.Expr.Range(), "Invalid public key", "%s", err)
			return j
		}
		j.PublicKey, family = key, fam
	}
	if attr, ok := attrs["jwks_url"]; ok {
		sources++
		family = "jwks"
		if err := checkKeySetURL(j.JWKSURL); err != nil {
			d.errorf(attr.Expr.Range(), "Invalid JWKS URL", "%s", err)
		}
	}
	if sources != 1 {
		d.errorf(b.DefRange, "JWT key", "A jwt block takes exactly one of hmac_secret, public_key_file and jwks_url.")
		return j
	}

	defaults := map[string][]string{
		"hmac": {"HS256"}, "rsa": {"RS256"}, "ecdsa": {"ES256"}, "ed25519": {"EdDSA"},
		"jwks": {"RS256", "ES256", "EdDSA"},
	}
	j.Algorithms = defaults[family]
	if attr, ok := attrs["algorithms"]; ok && d.strings(attrs, "algorithms", &j.Algorithms) {
		for _, alg := range j.Algorithms {
			fam, known := algorithmFamilies[alg]
			switch {
			case !known:
				d.errorf(attr.Expr.Range(), "Unknown algorithm", "%q is not an algorithm ssegate verifies (\"none\" never is); use %s.", alg, strings.Join(slices.Sorted(maps.Keys(algorithmFamilies)), ", "))
			case family != "jwks" && fam != family:
				// Taking an RSA public key as an HMAC secret is the classic
				// way to forge tokens: algorithms must fit the key.
				d.errorf(attr.Expr.Range(), "Algorithm does not fit the key", "%s needs %s, and this block has %s.", alg, keyNames[fam], keyNames[family])
			case family == "jwks" && fam == "hmac":
				d.errorf(attr.Expr.Range(), "Algorithm does not fit the key", "%s needs a shared secret; a JWKS holds public keys.", alg)
			}
		}
	}
	return j
}

// readPublicKey reads a PEM public key (or certificate) and names its
// family.
func readPublicKey(path string) (any, string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", path, err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, "", fmt.Errorf("%s holds no PEM block", path)
	}
	var key any
	switch block.Type {
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", path, err)
		}
		key = cert.PublicKey
	default:
		if key, err = x509.ParsePKIXPublicKey(block.Bytes); err != nil {
			return nil, "", fmt.Errorf("%s: not a PKIX public key (BEGIN PUBLIC KEY) or certificate: %w", path, err)
		}
	}
	switch key.(type) {
	case *rsa.PublicKey:
		return key, "rsa", nil
	case *ecdsa.PublicKey:
		return key, "ecdsa", nil
	case ed25519.PublicKey:
		return key, "ed25519", nil
	}
	return nil, "", fmt.Errorf("%s: %T keys are not supported", path, key)
}

// routeAuth reads a route's auth attribute: one name or a list of them.
func (d *decoder) routeAuth(attr *hcl.Attribute) []string {
	v, diags := attr.Expr.Value(d.ctx)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return nil
	}
	if v.Type() == cty.String {
		return []string{v.AsString()}
	}
	var names []string
	lv, err := convert.Convert(v, cty.List(cty.String))
	if err == nil && !lv.IsNull() {
		err = gocty.FromCtyValue(lv, &names)
	}
	if err != nil || len(names) == 0 {
		d.errorf(attr.Expr.Range(), "Invalid auth", "auth names an auth block, like \"users\", or a list of them, any of which lets a client in.")
		return nil
	}
	return names
}

// checkAuthRefs reports routes, and the admin block, naming auth blocks
// that do not exist.
func (d *decoder) checkAuthRefs(cfg *Config, refs map[*Route]hcl.Range) {
	for _, rt := range cfg.Routes {
		d.checkAuthNames(cfg, rt.Auth, refs[rt])
	}
	if cfg.Admin != nil {
		d.checkAuthNames(cfg, cfg.Admin.Auth, cfg.Admin.AuthRange)
	}
}

func (d *decoder) checkAuthNames(cfg *Config, names []string, rng hcl.Range) {
	for _, name := range names {
		if _, ok := cfg.Auths[name]; !ok {
			known := "there are no auth blocks"
			if len(cfg.Auths) > 0 {
				known = fmt.Sprintf("the names are: %q", slices.Sorted(maps.Keys(cfg.Auths)))
			}
			d.errorf(rng, "Unknown auth", "There is no auth block named %q; %s.", name, known)
		}
	}
}

// checkKeySetURL wants https: whoever can change the key set in transit
// can sign any token. Plain http is for a key server on this machine.
func checkKeySetURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%q is not an https URL", raw)
	}
	if u.Scheme == "http" {
		host := u.Hostname()
		if ip, err := netip.ParseAddr(host); !(host == "localhost" || err == nil && ip.IsLoopback()) {
			return fmt.Errorf("%q: fetch keys over https; anyone on the way could swap them and sign any token", raw)
		}
	}
	return nil
}

// Auth is an `auth "KIND" "NAME"` block.
type Auth struct {
	Kind, Name string
	Tokens     []string            // bearer
	JWT        *auth.JWTConfig     // jwt; the proxy sets its HTTP client
	Forward    *auth.ForwardConfig // forward; likewise
	Ticket     *Ticket             // jwt and forward: tickets for browsers
	// Fingerprint is the same for two auth blocks of the same text.
	Fingerprint string
	Range       hcl.Range
}

// Ticket configures the exchange of credentials for a single-use ticket.
type Ticket struct {
	TTL  time.Duration
	Path string // where tickets are issued, by POST
}
