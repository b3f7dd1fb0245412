package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/internal/ssetest"
	"github.com/ssegate/ssegate/proxy"
)

// readyz fetches /readyz from the admin handler.
func readyz(t testing.TB, admin *httptest.Server, header http.Header) (int, proxy.Readiness) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, admin.URL+"/readyz", nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := admin.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r proxy.Readiness
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusServiceUnavailable {
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatalf("readyz body: %v", err)
		}
	}
	return resp.StatusCode, r
}

// /readyz says not ready, and why, while NATS is away, ready once it is
// there, and lists the fetching sources with their state; /healthz says
// the process is alive all along.
func TestAdminReadiness(t *testing.T) {
	t.Parallel()
	var polls atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		polls.Add(1)
		http.Error(w, "down for maintenance", http.StatusInternalServerError)
	}))
	defer up.Close()
	addr := loopback.FreeAddr(t)
	srv, _ := startWithoutNATS(t, addr, fmt.Sprintf(`
admin { listen = "127.0.0.1:0" }
route "/sse" {
  source "nats" { subject = "events" }
}
route "/status" {
  source "poll" {
    url      = "%s"
    interval = "1s"
  }
}`, up.URL))
	admin := httptest.NewServer(srv.Admin())
	defer admin.Close()

	resp, err := admin.Client().Get(admin.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz = %d", resp.StatusCode)
	}
	code, r := readyz(t, admin, nil)
	if code != http.StatusServiceUnavailable || r.Ready || len(r.NotReady) == 0 || !strings.HasPrefix(r.NotReady[0], "NATS is ") {
		t.Fatalf("readyz without NATS = %d %+v", code, r)
	}

	ns := loopback.NATS(t, addr)
	eventually(t, "readyz to say ready", func() bool {
		code, r = readyz(t, admin, nil)
		return code == http.StatusOK
	})
	if !r.Ready || r.NATS != "connected" || len(r.NotReady) != 0 {
		t.Fatalf("readyz = %+v", r)
	}
	// The poll fails; that shows, but does not make the replica unready.
	eventually(t, "the poll to show as failing", func() bool {
		code, r = readyz(t, admin, nil)
		return len(r.Sources) == 1 && r.Sources[0].State == "failing"
	})
	if s := r.Sources[0]; code != http.StatusOK || s.Route != "/status" || s.Source != 0 || !strings.Contains(s.Error, "500") {
		t.Fatalf("readyz = %d %+v", code, r)
	}
	// It stays failing, since it first failed, across its retries.
	first, tried := r.Sources[0], polls.Load()
	eventually(t, "a retry", func() bool { return polls.Load() > tried })
	if _, r = readyz(t, admin, nil); r.Sources[0].State != "failing" || r.Sources[0].Since != first.Since {
		t.Fatalf("a poll failing every time: %+v, first seen failing %+v", r.Sources[0], first)
	}

	ns.Shutdown()
	eventually(t, "readyz to say not ready", func() bool {
		code, r = readyz(t, admin, nil)
		return code == http.StatusServiceUnavailable
	})
	if r.Ready || r.NotReady[0] != "NATS is "+r.NATS {
		t.Fatalf("readyz = %+v", r)
	}
}

// Drain makes /readyz say not ready while the streams go on.
func TestAdminDrain(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/sse" {
  source "nats" { subject = "events" }
}`)
	admin := httptest.NewServer(h.srv.Admin())
	defer admin.Close()
	c := h.open("/sse", nil)
	h.srv.Drain()
	if code, r := readyz(t, admin, nil); code != http.StatusServiceUnavailable || len(r.NotReady) != 1 || r.NotReady[0] != "shutting down" {
		t.Fatalf("readyz while draining = %d %+v", code, r)
	}
	h.publish("events", "still here")
	c.ExpectData("still here")
}

// With the admin block's auth, the admin handler wants its credentials,
// except for the probes.
func TestAdminAuth(t *testing.T) {
	t.Parallel()
	h := start(t, `
auth "bearer" "ops" { tokens = ["s3cret"] }
admin {
  listen = "127.0.0.1:0"
  auth   = "ops"
}
route "/sse" {
  source "nats" { subject = "events" }
}`)
	admin := httptest.NewServer(h.srv.Admin())
	defer admin.Close()
	if code, r := readyz(t, admin, nil); code != http.StatusOK || !r.Ready {
		t.Fatalf("readyz without a token = %d %+v", code, r)
	}
	get := func(token string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, admin.URL+"/no-such-page", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := admin.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(""); code != http.StatusUnauthorized {
		t.Fatalf("without a token = %d", code)
	}
	if code := get("nope"); code != http.StatusUnauthorized {
		t.Fatalf("with a bad token = %d", code)
	}
	if code := get("s3cret"); code != http.StatusNotFound {
		t.Fatalf("with the token = %d", code)
	}
}

// The admin page's API lists the routes with their live counts, and its
// tail re-sends a route's events as JSON, event names included.
func TestAdminTail(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/stocks/{symbol}" {
  source "nats" {
    subject = "stocks.${path.symbol}"
    event   = "quote"
  }
}`)
	admin := httptest.NewServer(h.srv.Admin())
	t.Cleanup(admin.Close) // after the tail's client is closed

	page, err := admin.Client().Get(admin.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page.Body.Close()
	if page.StatusCode != http.StatusOK || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %q", page.StatusCode, page.Header.Get("Content-Type"))
	}

	tail := ssetest.Open(t, admin.Client(), admin.URL+"/tail/stocks/AAPL", nil)
	resp, err := admin.Client().Get(admin.URL + "/api/routes")
	if err != nil {
		t.Fatal(err)
	}
	var routes []proxy.RouteInfo
	err = json.NewDecoder(resp.Body).Decode(&routes)
	resp.Body.Close()
	if err != nil || len(routes) != 1 || routes[0].Path != "/stocks/{symbol}" || routes[0].Params[0] != "symbol" ||
		routes[0].Sources[0] != "nats" || routes[0].Streams != 1 || routes[0].Clients != 1 {
		t.Fatalf("routes %+v (%v)", routes, err)
	}

	h.publish("stocks.AAPL", "187.5")
	ev := tail.Next()
	var got map[string]string
	if err := json.Unmarshal([]byte(ev.Data), &got); err != nil {
		t.Fatalf("tail data %q: %v", ev.Data, err)
	}
	if got["event"] != "quote" || got["data"] != "187.5" || got["id"] == "" || ev.LastEventID != got["id"] || ev.Type != "" {
		t.Fatalf("tail event %+v, data %v", ev, got)
	}

	// What the route refuses, the tail refuses the same way.
	resp, err = admin.Client().Get(admin.URL + "/tail/stocks/a.b")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("tail of a bad path = %d", resp.StatusCode)
	}
}

// A tail whose admin client stops reading is cut off like a public client
// would be (write_timeout), and does not hold up Shutdown.
func TestTailOfAStalledClient(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/sse" {
  write_timeout = "300ms"
  buffer        = 10000
  source "nats" { subject = "events" }
}`)
	admin := httptest.NewServer(h.srv.Admin())
	t.Cleanup(admin.Close)
	conn, err := net.Dial("tcp", admin.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A small receive buffer, never read: the socket fills fast.
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /tail/sse HTTP/1.1\r\nHost: x\r\n\r\n")
	eventually(t, "the tail to join", func() bool {
		for _, r := range h.srv.RouteInfos() {
			if r.Clients == 1 {
				return true
			}
		}
		return false
	})
	big := strings.Repeat("x", 64<<10)
	for range 200 {
		h.publish("events", big)
	}
	eventually(t, "the stalled tail to be cut off", func() bool {
		return h.srv.RouteInfos()[0].Clients == 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}
