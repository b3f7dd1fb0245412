package config

import (
	"mime"
	"path"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Page is a `page "PATH" { file = "..." }` block: a file served as it is,
// such as a page whose script opens the routes' streams from their own
// origin, with no CORS to set up.
type Page struct {
	Path        string // "/" serves the root alone, not every path under it
	ContentType string
	Body        []byte
	Range       hcl.Range
}

// Pattern is the ServeMux pattern that serves the page.
func (p *Page) Pattern() string {
	if p.Path == "/" {
		return "GET /{$}"
	}
	return "GET " + p.Path
}

var pageSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "file", Required: true}, {Name: "content_type"}},
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
