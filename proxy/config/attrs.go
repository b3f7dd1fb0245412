package config

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/ssegate/ssegate/internal/hclattr"
)

func (d *decoder) duplicate(b *hcl.Block, what string, prev *hcl.Block) {
	d.errorf(b.DefRange, "Duplicate "+strings.SplitN(what, " ", 2)[0], "A %s was already defined at %s.", what, pos(prev.DefRange))
}

// pos renders where a range starts as file:line:col.
func pos(r hcl.Range) string { return hclattr.Pos(r) }

func (d *decoder) errorf(rng hcl.Range, summary, format string, args ...any) {
	d.diags = append(d.diags, hclattr.Errorf(rng, summary, format, args...)...)
}

// The attribute readers record what hclattr finds wrong.

// evalString evaluates attr as a string; false means a diagnostic was
// recorded.
func (d *decoder) evalString(attr *hcl.Attribute, dst *string) bool {
	diags := hclattr.String(hcl.Attributes{attr.Name: attr}, attr.Name, d.ctx, dst)
	d.diags = append(d.diags, diags...)
	return !diags.HasErrors()
}

func (d *decoder) str(attrs hcl.Attributes, name string, dst *string) {
	d.diags = append(d.diags, hclattr.String(attrs, name, d.ctx, dst)...)
}

func (d *decoder) oneOf(attrs hcl.Attributes, name string, dst *string, allowed ...string) {
	d.diags = append(d.diags, hclattr.OneOf(attrs, name, d.ctx, dst, allowed...)...)
}

// duration reads a duration of at least least; when off is true, zero is
// allowed too and turns the setting off.
func (d *decoder) duration(attrs hcl.Attributes, name string, dst *time.Duration, least time.Duration, off bool) {
	d.diags = append(d.diags, hclattr.Duration(attrs, name, d.ctx, dst, least, off)...)
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

func (d *decoder) integer(attrs hcl.Attributes, name string, dst *int, minimum int) {
	d.diags = append(d.diags, hclattr.Int(attrs, name, d.ctx, dst, minimum)...)
}

func (d *decoder) boolean(attrs hcl.Attributes, name string, dst *bool) {
	d.diags = append(d.diags, hclattr.Bool(attrs, name, d.ctx, dst)...)
}

// strings reads a list of strings; false means it is absent or wrong.
func (d *decoder) strings(attrs hcl.Attributes, name string, dst *[]string) bool {
	if _, ok := attrs[name]; !ok {
		return false
	}
	diags := hclattr.Strings(attrs, name, d.ctx, dst)
	d.diags = append(d.diags, diags...)
	return !diags.HasErrors()
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
