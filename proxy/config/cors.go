package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// CORS says which web origins may open a route's streams from a page.
type CORS struct {
	// AllowOrigins are exact origins ("https://app.example.com"), patterns
	// with a wildcard first label ("https://*.example.com"), or "*".
	AllowOrigins     []string
	AllowCredentials bool
	MaxAge           time.Duration // how long a browser may cache a preflight
}

var corsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "allow_origins", Required: true}, {Name: "allow_credentials"}, {Name: "max_age"}},
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
