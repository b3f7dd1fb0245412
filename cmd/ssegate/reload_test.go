package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ssegate/ssegate/internal/loopback"
)

// The running binary answers `ssegate health`, and reloads on SIGHUP and
// on `ssegate reload`: a client
// of an unchanged route stays connected throughout, an added route
// serves, and a config with errors, or an emptied one, is refused with its
// diagnostics while the old one goes on.
func TestReloadBySIGHUPAndCommand(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	httpAddr, natsAddr, adminAddr := loopback.FreeAddr(t), loopback.FreeAddr(t), loopback.FreeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "ssegate.hcl")
	base := fmt.Sprintf(`
listen = %q
log { format = "json" }
admin { listen = %q }
nats {
  embedded { listen = %q }
}
route "/sse" {
  source "nats" { subject = "events" }
}
`, httpAddr, adminAddr, natsAddr)
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(base)
	proc, logs := startProxy(t, bin, cfgPath)
	stream := openStream(t, "http://"+httpAddr+"/sse", "")

	// The image's HEALTHCHECK: alive, and ready; nothing at another port.
	for _, args := range [][]string{{"health", "-admin", "http://" + adminAddr}, {"health", "-ready", "-admin", "http://" + adminAddr}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 0 || !strings.Contains(out.String(), `"ready":true`) && !strings.Contains(out.String(), `"status":"ok"`) {
			t.Fatalf("%v: exit %d, %q %q", args, code, out.String(), errOut.String())
		}
	}
	if code := run([]string{"health", "-admin", "http://" + loopback.FreeAddr(t)}, io.Discard, io.Discard); code != 1 {
		t.Fatalf("health of nothing: exit %d, want 1", code)
	}

	write(base + `
route "/more" {
  source "nats" { subject = "more" }
}`)
	if err := proc.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, logs, `"config reloaded"`)
	publishWith(t, bin, natsAddr, "after SIGHUP")
	if ev := stream.Next(); ev.Data != "after SIGHUP" {
		t.Fatalf("event %+v", ev)
	}

	write(base + `
route "/broken" {
  keepalive = "soon"
  source "nats" { subject = "b" }
}`)
	var out, errOut bytes.Buffer
	if code := run([]string{"reload", "-admin", "http://" + adminAddr}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "Invalid duration") {
		t.Fatalf("reload of a broken config: exit %d, %q", code, errOut.String())
	}
	// Logged a line per diagnostic, with its position.
	waitLog(t, logs, `"at":"`+cfgPath+`:13:15","detail":"keepalive = \"soon\" is not a duration`)

	// An emptied file (an editor's save half done) must not end every
	// stream: a config without routes is refused unless it says so.
	write("")
	if err := proc.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, logs, `"message":"No routes"`)
	resp, err := http.Get("http://" + httpAddr + "/more")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Fatalf("the route added by SIGHUP, after a refused reload: %s", resp.Status)
	}

	write(base)
	out.Reset()
	if code := run([]string{"reload", "-admin", "http://" + adminAddr}, &out, &errOut); code != 0 || out.String() != "reloaded\n" {
		t.Fatalf("reload: exit %d, %q %q", code, out.String(), errOut.String())
	}
	publishWith(t, bin, natsAddr, "after reload")
	if ev := stream.Next(); ev.Data != "after reload" {
		t.Fatalf("event %+v", ev)
	}
	if strings.Contains(stream.Raw(), "reconnect") {
		t.Fatalf("the unchanged route's client was told to reconnect: %q", stream.Raw())
	}
}
