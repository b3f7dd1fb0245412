package config

import (
	"net/url"

	"github.com/hashicorp/hcl/v2"

	"github.com/ssegate/ssegate/sources"
)

// NATS configures the NATS connection: an external server or cluster at URL, or
// an embedded server when URL is empty.
type NATS struct {
	URL       string
	Name      string
	CredsFile string
	Embedded  Embedded
	// ControlSubject is where replicas take revocations
	// (ControlSubject.revoke); whoever may publish under it can end
	// streams, so NATS permissions must keep it to operators.
	ControlSubject string
}

// DefaultControlSubject is NATS.ControlSubject unless the nats block
// says otherwise.
const DefaultControlSubject = "ssegate.control"

// Embedded configures the in-process nats-server.
type Embedded struct {
	// Listen is the TCP address other processes publish to; empty means
	// in-process connections only.
	Listen string
	// StoreDir enables JetStream, stored in this directory.
	StoreDir string
	// ServerName names the server; unique within a cluster.
	ServerName string
	// Cluster, when set, joins the embedded servers of several ssegate
	// replicas into one NATS cluster: nats-server's own clustering.
	Cluster *EmbeddedCluster
}

// EmbeddedCluster configures the embedded server's cluster routes.
type EmbeddedCluster struct {
	Name   string
	Listen string   // host:port other nodes connect to
	Routes []string // nats://host:port of the other nodes
}

var natsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "url"}, {Name: "name"}, {Name: "creds_file"}, {Name: "control_subject"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "embedded"}},
}

var embeddedSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "listen"}, {Name: "store_dir"}, {Name: "server_name"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "cluster"}},
}

var clusterSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "name"}, {Name: "listen", Required: true}, {Name: "routes"}},
}

func (d *decoder) nats(b *hcl.Block, n *NATS) {
	content, diags := b.Body.Content(natsSchema)
	d.diags = append(d.diags, diags...)
	d.str(content.Attributes, "url", &n.URL)
	d.str(content.Attributes, "name", &n.Name)
	d.str(content.Attributes, "creds_file", &n.CredsFile)
	if attr, ok := content.Attributes["control_subject"]; ok {
		d.str(content.Attributes, "control_subject", &n.ControlSubject)
		if sources.CheckPublishable(n.ControlSubject) != nil {
			d.errorf(attr.Expr.Range(), "Invalid control_subject", "control_subject = %q must be a NATS subject without wildcards, like \"ssegate.control\".", n.ControlSubject)
		}
	}
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
