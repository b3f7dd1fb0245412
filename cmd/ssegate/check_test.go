package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/proxy"
	"github.com/ssegate/ssegate/proxy/config"
)

// serveRoute runs ssegate with hcl on a loopback NATS, behind wrap.
func serveRoute(t *testing.T, hcl string, wrap func(http.Handler) http.Handler) (url, natsURL string) {
	t.Helper()
	ns := loopback.NATS(t, "")
	cfg, err := config.Parse([]byte(hcl), "check.hcl")
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	srv, err := proxy.New(cfg, proxy.WithNATS(nc))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(wrap(srv))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		ts.Close()
	})
	return ts.URL, ns.ClientURL()
}

const checkRoute = `
route "/quotes/{symbol}" {
  keepalive = "1s"
  history   = 10
  source "nats" { subject = "quotes.${path.symbol}" }
}`

func TestCheckAHealthyRoute(t *testing.T) {
	t.Parallel()
	url, natsURL := serveRoute(t, checkRoute, func(h http.Handler) http.Handler { return h })
	var out, errOut bytes.Buffer
	code := run([]string{"check", "-nats", natsURL, "-subject", "quotes.AAPL", "-wait", "5s", url + "/quotes/AAPL"}, &out, &errOut)
	t.Log(out.String())
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"ok    HTTP/1.1 200 OK", "warn  HTTP/1.1: browsers open at most 6", "ok    probe event arrived in", "ok    keepalive comments every ", "ok    resume with Last-Event-ID", "all checks passed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// The route's keepalive is 1s: never sooner (a busy machine can only
	// make the measured interval longer).
	m := regexp.MustCompile(`keepalive comments every (\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatal("no keepalive interval measured")
	}
	if d, err := time.ParseDuration(m[1]); err != nil || d < 900*time.Millisecond {
		t.Errorf("keepalive interval %q, want about 1s or more", m[1])
	}
}

// bufferingProxy sends the head, then holds the body back until it has
// 4 KiB or the stream ends, as a proxy with buffering on does.
type bufferingProxy struct {
	http.ResponseWriter
	headSent bool
}

func (b *bufferingProxy) Flush() {
	if !b.headSent {
		b.headSent = true
		b.ResponseWriter.(http.Flusher).Flush()
	}
}

func TestCheckFindsABufferingProxy(t *testing.T) {
	t.Parallel()
	url, natsURL := serveRoute(t, checkRoute, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(&bufferingProxy{ResponseWriter: w}, r)
		})
	})
	var out, errOut bytes.Buffer
	code := run([]string{"check", "-nats", natsURL, "-subject", "quotes.AAPL", "-wait", "2s", url + "/quotes/AAPL"}, &out, &errOut)
	if code != 1 || !strings.Contains(out.String(), "FAIL  the probe event did not arrive") {
		t.Fatalf("exit %d:\n%s%s", code, out.String(), errOut.String())
	}
	t.Log(out.String())
}

func TestCheckAnUnknownRoute(t *testing.T) {
	t.Parallel()
	url, _ := serveRoute(t, checkRoute, func(h http.Handler) http.Handler { return h })
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "-wait", "1s", url + "/nope"}, &out, &errOut); code != 1 || !strings.Contains(out.String(), "FAIL  answer 404") {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	if code := run([]string{"check", "-nats", "nats://127.0.0.1:1"}, &out, &errOut); code != 2 {
		t.Fatalf("check without a URL: exit %d", code)
	}
}
