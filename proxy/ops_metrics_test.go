package proxy_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ssegate/ssegate/proxy"
	"github.com/ssegate/ssegate/sse"
)

// scrape returns the admin handler's /metrics text.
func scrape(t *testing.T, admin *httptest.Server) string {
	t.Helper()
	resp, err := admin.Client().Get(admin.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// hasSample reports whether text has the sample line, labels in the
// exposition format's (alphabetical) order.
func hasSample(text, sample string) bool {
	for line := range strings.Lines(text) {
		if strings.TrimSpace(line) == sample {
			return true
		}
	}
	return false
}

// The metrics count what happened on the routes, labelled by route
// pattern, never by concrete path or client.
func TestMetrics(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"items":[{"id":"a"}]}`)
	}))
	defer up.Close()
	h := start(t, fmt.Sprintf(`
auth "bearer" "ops" { tokens = ["s3cret"] }
route "/quotes/{symbol}" {
  history = 10
  source "nats" { subject = "quotes.${path.symbol}" }
}
route "/private" {
  auth = "ops"
  source "nats" { subject = "private" }
}
route "/hooks" {
  source "webhook" {
    path = "/hooks/in"
    verify "bearer" { tokens = ["hook"] }
  }
}
route "/status" {
  source "poll" {
    url      = "%s"
    interval = "50ms"
    items    = msg.json.items
    key      = msg.json.id
  }
}`, up.URL))
	admin := httptest.NewServer(h.srv.Admin())
	defer admin.Close()

	a := h.open("/quotes/AAPL", nil)
	h.open("/quotes/MSFT", nil)
	h.publish("quotes.AAPL", "187.5")
	first := a.ExpectData("187.5")[0]
	a.Close()
	h.open("/quotes/AAPL", http.Header{"Last-Event-Id": {first.LastEventID}})
	h.open("/quotes/AAPL", http.Header{"Last-Event-Id": {"unknown"}})
	resp, err := http.Get(h.ts.URL + "/private")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = http.Get(h.ts.URL + "/quotes/a.b")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, token := range []string{"hook", "nope"} {
		req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/hooks/in", strings.NewReader("x"))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	want := []string{
		`ssegate_connections_total{result="accepted",route="/quotes/{symbol}"} 4`,
		`ssegate_connections_total{result="unauthorized",route="/private"} 1`,
		`ssegate_connections_total{result="bad_request",route="/quotes/{symbol}"} 1`,
		`ssegate_events_received_total{route="/quotes/{symbol}",source="0"} 1`,
		`ssegate_replays_total{result="replayed",route="/quotes/{symbol}"} 1`,
		`ssegate_replays_total{result="reset",route="/quotes/{symbol}"} 1`,
		`ssegate_webhook_responses_total{code="202",route="/hooks"} 1`,
		`ssegate_webhook_responses_total{code="401",route="/hooks"} 1`,
		`ssegate_streams_open{route="/quotes/{symbol}"} 2`,
		`ssegate_clients_connected{route="/quotes/{symbol}"} 3`,
		`ssegate_nats_connected 1`,
	}
	var text string
	eventually(t, "the metrics to count what happened", func() bool {
		text = scrape(t, admin)
		for _, w := range want {
			if !hasSample(text, w) {
				return false
			}
		}
		return strings.Contains(text, `ssegate_poll_requests_total{outcome="changed",route="/status",source="0"}`) &&
			strings.Contains(text, `ssegate_poll_requests_total{outcome="unchanged",route="/status",source="0"}`) &&
			hasSample(text, `ssegate_sources{route="/status",source="0",state="running"} 1`)
	})
	for _, w := range want {
		if !hasSample(text, w) {
			t.Errorf("missing %s", w)
		}
	}
	if strings.Contains(text, "AAPL") || strings.Contains(text, "MSFT") {
		t.Error("a concrete path is in the labels")
	}
	if !strings.Contains(text, "ssegate_events_delivered_total{") || !strings.Contains(text, "ssegate_bytes_written_total{") || !strings.Contains(text, "go_goroutines") {
		t.Errorf("metrics lack deliveries, bytes or the Go runtime:\n%s", text)
	}
}

// A client dropped before its stream started (its hook sent more than
// its queue holds) is counted like one dropped later.
func TestSlowClientCountedBeforeStart(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/sse" {
  buffer = 2
  source "nats" { subject = "events" }
}`, proxy.OnConnect(func(c *proxy.Client) {
		for range 3 {
			e, _ := sse.NewEvent("", "hello")
			_ = c.Send(e)
		}
	}))
	admin := httptest.NewServer(h.srv.Admin())
	defer admin.Close()
	resp, err := h.ts.Client().Get(h.ts.URL + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body) // the stream ends at once
	resp.Body.Close()
	eventually(t, "the drop to be counted", func() bool {
		return hasSample(scrape(t, admin), `ssegate_slow_clients_total{reason="queue_full",route="/sse"} 1`)
	})
}
