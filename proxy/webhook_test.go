package proxy_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/internal/ssetest"
)

const githubSecret = "It's a Secret to Everybody"

// post sends a delivery and returns the status and body of the answer.
func post(t *testing.T, url, contentType string, header http.Header, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// postBody posts a plain-text delivery.
func postBody(t *testing.T, url, body string) (int, string) {
	t.Helper()
	return post(t, url, "text/plain", nil, body)
}

// githubHeaders signs body as GitHub does, computed here with crypto/hmac
// rather than by the code under test.
func githubHeaders(secret, delivery, event, body string) http.Header {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return http.Header{
		"X-Hub-Signature-256": {"sha256=" + hex.EncodeToString(mac.Sum(nil))},
		"X-Github-Delivery":   {delivery},
		"X-Github-Event":      {event},
	}
}

const githubRoute = `
route "/deploys" {
  source "webhook" {
    path          = "/hooks/github"
    max_body      = 1024
    content_types = ["application/json"]
    event         = msg.headers["X-Github-Event"]
    data          = jsonencode({ repo = msg.json.repository.name, ref = msg.json.ref })
    verify "hmac" {
      secret = "It's a Secret to Everybody"
    }
  }
}`

func TestWebhookGitHub(t *testing.T) {
	t.Parallel()
	h := start(t, githubRoute)
	c := h.open("/deploys", nil)
	hook := h.ts.URL + "/hooks/github"
	body := `{"ref":"main","repository":{"name":"web"}}`

	code, answer := post(t, hook, "application/json", githubHeaders(githubSecret, "d-1", "push", body), body)
	if code != http.StatusAccepted {
		t.Fatalf("genuine delivery: %d %q", code, answer)
	}
	ev := c.Next()
	if ev.Type != "push" || ev.Data != `{"ref":"main","repo":"web"}` {
		t.Fatalf("event %+v", ev)
	}

	// GitHub retries a delivery it thinks failed: accepted, not repeated.
	code, answer = post(t, hook, "application/json", githubHeaders(githubSecret, "d-1", "push", body), body)
	if code != http.StatusAccepted || !strings.Contains(answer, "duplicate") {
		t.Errorf("retried delivery: %d %q", code, answer)
	}

	refused := []struct {
		name        string
		contentType string
		header      http.Header
		body        string
		code        int
		reason      string
	}{
		{"forged", "application/json", githubHeaders("not the secret", "d-2", "push", body), body, 401, "signature does not match"},
		{"unsigned", "application/json", http.Header{"X-Github-Delivery": {"d-3"}}, body, 401, "X-Hub-Signature-256"},
		{"tampered", "application/json", githubHeaders(githubSecret, "d-4", "push", body), strings.Replace(body, "web", "evil", 1), 401, "signature does not match"},
		{"too large", "application/json", githubHeaders(githubSecret, "d-5", "push", strings.Repeat("x", 2000)), strings.Repeat("x", 2000), 413, "larger than 1024 bytes"},
		{"not JSON", "text/plain", githubHeaders(githubSecret, "d-6", "push", body), body, 415, "text/plain"},
		{"unmappable", "application/json", githubHeaders(githubSecret, "d-7", "push", `{"ref":"main"}`), `{"ref":"main"}`, 400, "data expression"},
	}
	for _, r := range refused {
		code, answer := post(t, hook, r.contentType, r.header, r.body)
		if code != r.code || !strings.Contains(answer, r.reason) {
			t.Errorf("%s: got %d %q, want %d with %q", r.name, code, answer, r.code, r.reason)
		}
		// A sender learns the reason, not the config's file and lines.
		if strings.Contains(answer, "test.hcl") {
			t.Errorf("%s: the answer shows the config's layout: %q", r.name, answer)
		}
	}
	if resp, err := http.Get(hook); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET on the webhook: %v %v, want 405", resp, err)
	}
	c.ExpectQuiet(100 * time.Millisecond)
}

// On a route with parameters, the subject picks the stream a delivery
// feeds.
func TestWebhookSubjectPicksTheStream(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/repos/{repo}" {
  source "webhook" {
    path    = "/hooks/github"
    subject = "gh.${msg.json.repository.name}"
    data    = msg.json.ref
    verify "hmac" { secret = "It's a Secret to Everybody" }
  }
}`)
	web, api := h.open("/repos/web", nil), h.open("/repos/api", nil)
	hook := h.ts.URL + "/hooks/github"
	for i, repo := range []string{"web", "api", "web"} {
		body := fmt.Sprintf(`{"ref":"r%d","repository":{"name":%q}}`, i, repo)
		if code, answer := post(t, hook, "application/json", githubHeaders(githubSecret, strconv.Itoa(i), "push", body), body); code != http.StatusAccepted {
			t.Fatalf("delivery %d: %d %q", i, code, answer)
		}
	}
	web.ExpectData("r0", "r2")
	api.ExpectData("r1")

	body := `{"ref":"x","repository":{"name":"a.b"}}`
	if code, answer := post(t, hook, "application/json", githubHeaders(githubSecret, "bad", "push", body), body); code != http.StatusUnprocessableEntity || !strings.Contains(answer, "path.repo") {
		t.Errorf("repository name with a dot: %d %q, want 422 naming path.repo", code, answer)
	}
	web.ExpectQuiet(50 * time.Millisecond)
}

func TestWebhookTimestampsAndBearer(t *testing.T) {
	t.Parallel()
	key := []byte("standard-webhooks-key")
	h := start(t, fmt.Sprintf(`
route "/pay" {
  source "webhook" {
    path = "/hooks/stripe"
    verify "stripe" {
      secret    = "whsec_stripe"
      tolerance = "5m"
    }
  }
  source "webhook" {
    path = "/hooks/std"
    verify "standard" { secret = "whsec_%s" }
  }
  source "webhook" {
    path = "/hooks/ci"
    verify "bearer" { tokens = ["t0ken"] }
  }
}`, base64.StdEncoding.EncodeToString(key)))
	c := h.open("/pay", nil)
	sign := func(key []byte, s string) []byte {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(s))
		return mac.Sum(nil)
	}
	stripe := func(at time.Time, body string) http.Header {
		ts := strconv.FormatInt(at.Unix(), 10)
		return http.Header{"Stripe-Signature": {"t=" + ts + ",v1=" + hex.EncodeToString(sign([]byte("whsec_stripe"), ts+"."+body))}}
	}
	standard := func(at time.Time, id, body string) http.Header {
		ts := strconv.FormatInt(at.Unix(), 10)
		return http.Header{
			"Webhook-Id":        {id},
			"Webhook-Timestamp": {ts},
			"Webhook-Signature": {"v1," + base64.StdEncoding.EncodeToString(sign(key, id+"."+ts+"."+body))},
		}
	}
	now, old := time.Now(), time.Now().Add(-time.Hour)
	const stripeEvent = `{"id":"evt_1","object":"event"}`
	cases := []struct {
		name, path string
		header     http.Header
		body       string
		code       int
	}{
		{"stripe", "/hooks/stripe", stripe(now, "s-ok"), "s-ok", 202},
		{"stripe expired", "/hooks/stripe", stripe(old, "s-old"), "s-old", 401},
		// Stripe names no delivery: its signed event id does.
		{"stripe event", "/hooks/stripe", stripe(now, stripeEvent), stripeEvent, 202},
		{"stripe event replayed", "/hooks/stripe", stripe(now, stripeEvent), stripeEvent, 202},
		{"standard", "/hooks/std", standard(now, "msg_1", "w-ok"), "w-ok", 202},
		{"standard retried", "/hooks/std", standard(now, "msg_1", "w-ok"), "w-ok", 202},
		{"standard expired", "/hooks/std", standard(old, "msg_2", "w-old"), "w-old", 401},
		{"bearer", "/hooks/ci", http.Header{"Authorization": {"Bearer t0ken"}}, "b-ok", 202},
		{"wrong bearer", "/hooks/ci", http.Header{"Authorization": {"Bearer guess"}}, "b-bad", 401},
	}
	for _, tc := range cases {
		code, answer := post(t, h.ts.URL+tc.path, "application/json", tc.header, tc.body)
		if code != tc.code {
			t.Errorf("%s: %d %q, want %d", tc.name, code, answer, tc.code)
		}
	}
	c.ExpectData("s-ok", stripeEvent, "w-ok", "b-ok")
	c.ExpectQuiet(50 * time.Millisecond)

	req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/hooks/ci", strings.NewReader("x"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != "Bearer" {
		t.Errorf("no token: %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

// With NATS down a delivery is refused with 503, so the sender retries;
// once NATS is back it is accepted and reaches the browser.
func TestWebhookNATSDown(t *testing.T) {
	t.Parallel()
	addr := loopback.FreeAddr(t)
	srv, ts := startWithoutNATS(t, addr, `
route "/deploys" {
  source "webhook" {
    path = "/hooks/deploy"
    verify "none" {}
  }
}`)
	hook := ts.URL + "/hooks/deploy"
	req, _ := http.NewRequest(http.MethodPost, hook, strings.NewReader("v1"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("NATS down: %d, Retry-After %q; want 503 with a retry hint", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	loopback.NATS(t, addr)
	eventually(t, "ssegate to connect", srv.Conn().IsConnected)
	c := ssetest.Open(t, ts.Client(), ts.URL+"/deploys", nil)
	if code, answer := post(t, hook, "text/plain", nil, "v1"); code != http.StatusAccepted {
		t.Fatalf("NATS back: %d %q", code, answer)
	}
	c.ExpectData("v1")
}

// A webhook's methods share one de-duplication window, and an event NATS
// cannot carry is refused as too large, not as a reason to retry.
func TestWebhookMethodsShareDedupAndOversizeIs413(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/deploys" {
  source "webhook" {
    path     = "/hooks/deploy"
    methods  = ["POST", "put"]
    max_body = 4194304
    verify "none" {}
  }
}`)
	c := h.open("/deploys", nil)
	hook := h.ts.URL + "/hooks/deploy"
	id := http.Header{"Webhook-Id": {"msg_1"}}
	for _, method := range []string{http.MethodPost, http.MethodPut} {
		req, _ := http.NewRequest(method, hook, strings.NewReader("once"))
		req.Header = id.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Errorf("%s: %d", method, resp.StatusCode)
		}
	}
	c.ExpectData("once")
	c.ExpectQuiet(50 * time.Millisecond)

	big := strings.Repeat("x", 2<<20) // NATS takes 1 MiB by default
	code, answer := post(t, hook, "text/plain", nil, big)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(answer, "max_payload") {
		t.Errorf("event larger than NATS takes: %d %q, want 413", code, answer)
	}
}
