package proxy_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/ssegate/ssegate/internal/ssetest"
	"github.com/ssegate/ssegate/proxy"
	"github.com/ssegate/ssegate/proxy/config"
)

// loopbackOnly is an HTTP client that dials nothing beyond this machine:
// configs made up by a fuzzer name any address in their poll URLs and key
// sets.
func loopbackOnly() *http.Client {
	dialer := &net.Dialer{Timeout: time.Second}
	return &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil || !ap.Addr().IsLoopback() {
				return nil, errors.New("test client: only loopback addresses")
			}
			return dialer.DialContext(ctx, network, addr)
		},
	}}
}

// FuzzReload holds that whatever config text a running proxy is asked to
// reload (read from a file being written, say), it neither panics nor
// stops serving: a config it takes or refuses, the proxy then reloads its
// first config and its stream still gets events.
func FuzzReload(f *testing.F) {
	const base = `
route "/sse" {
  source "nats" { subject = "events" }
}`
	f.Add([]byte(base))
	f.Add([]byte(""))
	f.Add([]byte("route \"/t/{name}\" {\n  linger = \"1s\"\n  source \"nats\" { subject = \"t.${path.name}\" }\n}\n"))
	f.Add([]byte("route \"/j\" {\n  history { store = \"jetstream\" }\n  source \"nats\" { subject = \"j\" }\n}\n"))
	f.Add([]byte("route \"/p\" {\n  source \"poll\" {\n    url = \"http://127.0.0.1:1/x\"\n    interval = \"1s\"\n  }\n}\n"))
	f.Add([]byte("x = [[[[[[[[[[[[[[[[[[[[[[[[["))
	h := start(f, base, proxy.WithHTTPClient(loopbackOnly()))
	baseCfg := func() *config.Config {
		cfg, err := config.Parse([]byte(base), "base.hcl")
		if err != nil {
			f.Fatal(err)
		}
		return cfg
	}
	dir := f.TempDir()
	n := 0
	f.Fuzz(func(t *testing.T, src []byte) {
		if cfg, err := config.Parse(src, dir+"/fuzz.hcl"); err == nil {
			_ = h.srv.Reload(cfg)
		}
		if err := h.srv.Reload(baseCfg()); err != nil {
			t.Fatalf("the first config again: %v", err)
		}
		// Every so often, a new client of the first config's stream gets
		// what is published.
		if n++; n%50 == 1 {
			live := ssetest.Open(t, h.ts.Client(), h.ts.URL+"/sse", nil)
			if err := h.pub.Publish("events", []byte("still serving")); err != nil {
				t.Fatal(err)
			}
			live.ExpectData("still serving")
			live.Close()
		}
	})
}
