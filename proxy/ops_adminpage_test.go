package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/internal/needs"
	"github.com/ssegate/ssegate/proxy"
	"github.com/ssegate/ssegate/proxy/config"
)

// chromium returns node and the folder of the scripts that drive Debian's
// Chromium with playwright-core, or skips the test saying what it needs.
func chromium(t *testing.T) (node, dir string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		needs.Skip(t, "Debian's chromium", "apt-get install chromium (.ci/run does)")
	}
	dir = filepath.Join("testdata", "browser")
	return nodeWith(t, dir, "playwright-core"), dir
}

// browse runs a browser script of dir with node and args, calling line
// with each line it prints, and fails the test if it fails.
func browse(t *testing.T, node, dir string, line func(string), args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line(sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: %v\n%s", args[0], err, stderr.String())
	}
}

// The admin page in a real browser (Debian's Chromium, driven by
// playwright-core): pick a route, fill its parameter, tail it, and an
// event published to NATS shows up on the page with its id, name and data;
// a route with auth, which a tail cannot open, says why on the page.
func TestAdminPageInChromium(t *testing.T) {
	t.Parallel()
	node, dir := chromium(t)
	h := start(t, `
route "/stocks/{symbol}" {
  source "nats" {
    subject = "stocks.${path.symbol}"
    event   = "quote"
  }
}
auth "bearer" "ops" {
  tokens = ["t0ken"]
}
route "/private" {
  auth = "ops"
  source "nats" { subject = "private" }
}`)
	admin := httptest.NewServer(h.srv.Admin())
	t.Cleanup(admin.Close)

	var got string
	browse(t, node, dir, func(line string) {
		switch {
		case line == "READY":
			h.publish("stocks.AAPL", `{"price": 187.5}`)
		case strings.HasPrefix(line, "GOT "):
			got = strings.TrimPrefix(line, "GOT ")
		}
	}, "tail.mjs", admin.URL+"/", "/stocks/{symbol}", "AAPL")
	fields := strings.Split(got, "\t")
	if len(fields) != 3 || fields[0] == "" || fields[1] != "quote" || fields[2] != `{"price": 187.5}` {
		t.Fatalf("the page shows %q, want id, quote and the data", got)
	}

	var refused string
	browse(t, node, dir, func(line string) { refused += line + "\n" }, "tail.mjs", admin.URL+"/", "/private", "")
	if !strings.Contains(refused, "REFUSED refused: 401") || !strings.Contains(refused, "sends no credentials") {
		t.Errorf("the page says %q about a route with auth, want why it was refused", refused)
	}
}

// The README's browser snippet works as written: config.example.hcl serves
// demo.html (whose script the README shows) at /, and in Chromium the page
// opens /stocks/AAPL from its own origin and shows each quote, the
// example's fallback for a body that is not JSON included.
func TestREADMEDemoInChromium(t *testing.T) {
	t.Parallel()
	node, dir := chromium(t)
	page, err := os.ReadFile("../demo.html")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	script := page[bytes.Index(page, []byte("<script>")):]
	if !bytes.Contains(readme, bytes.TrimSpace(script)) {
		t.Fatal("README.md does not show demo.html's script as it is")
	}
	// As the quick start runs it, but with a NATS server of its own.
	example, err := config.Load("../config.example.hcl")
	if err != nil {
		t.Fatal(err)
	}
	h := startConfig(t, loopback.NATS(t, ""), example)

	var rows []string
	browse(t, node, dir, func(line string) {
		switch {
		case line == "READY":
			h.publish("stocks.AAPL", `{"price": 187.5, "id": 1}`)
			h.publish("stocks.AAPL", "not json")
		case strings.HasPrefix(line, "ROW "), strings.HasPrefix(line, "ERROR "):
			rows = append(rows, line)
		}
	}, "demo.mjs", h.ts.URL+"/", "2")
	if len(rows) != 2 || rows[0] != `ROW 1 {"price":187.5,"symbol":"AAPL"}` || !strings.HasSuffix(rows[1], ` "not json"`) {
		t.Errorf("the page shows %q", rows)
	}
}

// The README's many-topics snippet, run as it says in the console of the
// demo page against config.example.hcl, follows several topics on one
// EventSource; when ssegate closes the stream, the browser comes back
// with the id it saw last and misses nothing.
func TestREADMETopicsInChromium(t *testing.T) {
	t.Parallel()
	node, dir := chromium(t)
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(readme, []byte("## Many topics on one EventSource"))
	snippet := regexp.MustCompile("(?s)```js\n(.*?)```").FindSubmatch(readme[at:])
	if at < 0 || snippet == nil {
		t.Fatal("README.md has no many-topics snippet")
	}
	example, err := config.Load("../config.example.hcl")
	if err != nil {
		t.Fatal(err)
	}
	clients := make(chan *proxy.Client, 2)
	h := startConfig(t, loopback.NATS(t, ""), example, proxy.OnConnect(func(c *proxy.Client) {
		if strings.HasPrefix(c.Request().URL.Path, "/tickers") {
			clients <- c
		}
	}))
	var logs []string
	browse(t, node, dir, func(line string) {
		switch {
		case line == "READY":
			h.publish("stocks.MSFT", `{"price": 411.2}`)
			h.publish("stocks.AAPL", `{"price": 187.5}`)
		case strings.HasPrefix(line, "LOG "), strings.HasPrefix(line, "ERROR "):
			logs = append(logs, line)
			if len(logs) != 2 {
				break
			}
			// ssegate ends the stream; what is published before the page
			// is back is replayed to it.
			first := <-clients
			first.Close(200 * time.Millisecond)
			<-first.Done()
			h.publish("stocks.GOOG", `{"price": 2.5}`)
			select {
			case back := <-clients:
				if back.Request().Header.Get("Last-Event-ID") == "" {
					t.Error("the browser came back without its Last-Event-ID")
				}
			case <-time.After(wait):
				t.Error("the browser did not come back")
			}
		}
	}, "topics.mjs", h.ts.URL+"/", string(snippet[1]), "3")
	want := []string{`LOG MSFT {"price":411.2,"symbol":"MSFT"}`, `LOG AAPL {"price":187.5,"symbol":"AAPL"}`, `LOG GOOG {"price":2.5,"symbol":"GOOG"}`}
	if !slices.Equal(logs, want) {
		t.Errorf("the console shows %q, want %q", logs, want)
	}
}
