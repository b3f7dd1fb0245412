package proxy_test

import (
	"bufio"
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The admin page in a real browser (Debian's Chromium, driven by
// playwright-core): pick a route, fill its parameter, tail it, and an
// event published to NATS shows up on the page with its id, name and data.
func TestAdminPageInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Skip("needs Debian's chromium: apt-get install chromium (.ci/run does)")
	}
	dir := filepath.Join("testdata", "browser")
	node := nodeWith(t, dir, "playwright-core")
	h := start(t, `
route "/stocks/{symbol}" {
  source "nats" {
    subject = "stocks.${path.symbol}"
    event   = "quote"
  }
}`)
	admin := httptest.NewServer(h.srv.Admin())
	t.Cleanup(admin.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "tail.mjs", admin.URL+"/", "/stocks/{symbol}", "AAPL")
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
	var got string
	for sc.Scan() {
		switch line := sc.Text(); {
		case line == "READY":
			h.publish("stocks.AAPL", `{"price": 187.5}`)
		case strings.HasPrefix(line, "GOT "):
			got = strings.TrimPrefix(line, "GOT ")
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("browser script: %v\n%s", err, stderr.String())
	}
	fields := strings.Split(got, "\t")
	if len(fields) != 3 || fields[0] == "" || fields[1] != "quote" || fields[2] != `{"price": 187.5}` {
		t.Fatalf("the page shows %q, want id, quote and the data", got)
	}
}
