package proxy_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// get sends a plain request (not an EventSource) and returns the answer.
func get(t *testing.T, url string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func TestLimits(t *testing.T) {
	t.Parallel()
	h := start(t, `
max_connections        = 3
max_connections_per_ip = 1
trusted_proxies        = ["127.0.0.1"]

route "/a" {
  max_clients = 2
  retry       = "2s"
  source "nats" { subject = "a" }
}
route "/b" {
  source "nats" { subject = "b" }
}`)
	from := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {"203.0.113.9, " + ip}} }
	a1, a2 := h.open("/a", from("198.51.100.1")), h.open("/a", from("198.51.100.2"))

	// The third EventSource on /a is told to come back later, not failed.
	third := h.open("/a", from("198.51.100.3"))
	third.WaitEnd()
	expectRetryHint(t, third.Raw(), 2*time.Second)
	if !strings.Contains(third.Raw(), "max_clients") {
		t.Errorf("refusal does not say why: %q", third.Raw())
	}
	// A plain request over the limit gets a status it can act on.
	resp := get(t, h.ts.URL+"/a", from("198.51.100.3"))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("plain request over max_clients: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	// Per address, as a trusted proxy reports it.
	resp = get(t, h.ts.URL+"/b", from("198.51.100.1"))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("second stream from one address: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	b1 := h.open("/b", from("198.51.100.4"))

	// All three slots are taken.
	resp = get(t, h.ts.URL+"/b", from("198.51.100.5"))
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "max_connections") {
		t.Errorf("over max_connections: %d %q", resp.StatusCode, body)
	}

	// A slot given back is taken again; the first streams never noticed.
	a1.Close()
	eventually(t, "a slot to free", func() bool { return h.srv.Clients() == 2 })
	a3 := h.open("/a", from("198.51.100.6"))
	h.publish("a", "still here")
	a2.ExpectData("still here")
	a3.ExpectData("still here")
	b1.ExpectQuiet(10 * time.Millisecond)
}

// A stream ends at max_stream_duration with a retry hint, and the client
// resumes where it was.
func TestMaxStreamDuration(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/sse" {
  max_stream_duration = "1s"
  retry               = "100ms"
  source "nats" { subject = "events" }
}`)
	c := h.open("/sse", nil)
	h.publish("events", "one")
	seen := c.ExpectData("one")
	c.WaitEnd()
	raw := c.Raw()
	if !strings.Contains(raw, "max_stream_duration") || !strings.Contains(raw[strings.Index(raw, "data: one"):], "retry: ") {
		t.Errorf("stream ended without a retry hint and a reason: %q", raw)
	}
	h.publish("events", "two")
	r := h.open("/sse", http.Header{"Last-Event-Id": {seen[0].LastEventID}})
	r.ExpectData("two")
}

func TestCORS(t *testing.T) {
	t.Parallel()
	h := start(t, `
cors {
  allow_origins = ["*"]
}
route "/private" {
  cors {
    allow_origins     = ["https://app.example.com", "https://*.example.org"]
    allow_credentials = true
    max_age           = "10m"
  }
  source "nats" { subject = "p" }
}
route "/public" {
  source "nats" { subject = "q" }
}`)
	preflight := func(path, origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, h.ts.URL+path, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", "last-event-id")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := preflight("/private", "https://app.example.com")
	if resp.StatusCode != http.StatusNoContent ||
		resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		resp.Header.Get("Access-Control-Allow-Credentials") != "true" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Last-Event-ID") ||
		resp.Header.Get("Access-Control-Max-Age") != "600" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}

	for origin, allowed := range map[string]bool{
		"https://app.example.com":    true,
		"https://eu.app.example.org": true,
		"https://example.org":        false, // the wildcard needs a subdomain
		"http://app.example.org":     false, // and the scheme
		"https://evil.example.com":   false,
	} {
		c := h.open("/private", http.Header{"Origin": {origin}})
		got := c.Resp.Header.Get("Access-Control-Allow-Origin")
		if allowed && got != origin || !allowed && got != "" {
			t.Errorf("origin %s: Access-Control-Allow-Origin %q", origin, got)
		}
		if vary := c.Resp.Header.Values("Vary"); !slices.Contains(vary, "Origin") {
			t.Errorf("origin %s: Vary %q, want Origin", origin, vary)
		}
		c.Close()
	}

	// The top-level block is the default: any origin, no credentials.
	c := h.open("/public", http.Header{"Origin": {"https://anyone.test"}})
	if got := c.Resp.Header.Get("Access-Control-Allow-Origin"); got != "*" || c.Resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("public route: Access-Control-Allow-Origin %q", got)
	}
}
