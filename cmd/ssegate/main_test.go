package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	gosse "github.com/tmaxmax/go-sse"

	"github.com/ssegate/ssegate/internal/loopback"
)

const wait = 20 * time.Second

func TestValidate(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"validate", "-config", "../../config.example.hcl"}, &out, &errOut); code != 0 {
		t.Fatalf("validate example: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "valid, 2 route(s)") {
		t.Errorf("validate output: %q", out.String())
	}

	bad := filepath.Join(t.TempDir(), "bad.hcl")
	if err := os.WriteFile(bad, []byte("route \"/sse\" {\n  keepalive = \"soon\"\n  source \"nats\" { subject = \"a\" }\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errOut.Reset()
	if code := run([]string{"validate", "-config", bad}, &out, &errOut); code != 1 {
		t.Fatalf("validate broken config: exit %d, want 1", code)
	}
	if want := bad + ":2:15: error: Invalid duration"; !strings.Contains(errOut.String(), want) {
		t.Errorf("diagnostic %q not in:\n%s", want, errOut.String())
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	t.Setenv("SSEGATE_CONFIG", "../../config.example.hcl")
	var out, errOut bytes.Buffer
	if code := run([]string{"validate"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
}

func TestVersionAndUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "ssegate ") {
		t.Errorf("version: exit %d, %q", code, out.String())
	}
	if code := run([]string{"frobnicate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Errorf("unknown command: exit %d, %q", code, errOut.String())
	}
}

// The quick start as a user runs it: the built binary on a config with the
// embedded NATS server, a stream read with curl-like plain HTTP, an event
// published with `ssegate publish`, and SIGTERM closing the stream and
// exiting cleanly.
func TestRunPublishAndSignalShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "ssegate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	httpAddr, natsAddr := loopback.FreeAddr(t), loopback.FreeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "ssegate.hcl")
	cfg := fmt.Sprintf(`
listen           = %q
shutdown_timeout = "5s"
log { format = "json" }
nats {
  embedded { listen = %q }
}
route "/sse" {
  retry = "2s"
  source "nats" { subject = "events" }
}
`, httpAddr, natsAddr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "-config", cfgPath)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	logs := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs <- sc.Text()
		}
		close(logs)
	}()
	waitLog(t, logs, "ssegate serving")

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/sse", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw bytes.Buffer
	events := make(chan gosse.Event, 10)
	go func() {
		defer close(events)
		for ev, err := range gosse.Read(io.TeeReader(resp.Body, &raw), nil) {
			if err != nil {
				return
			}
			events <- ev
		}
	}()

	if out, err := exec.Command(bin, "publish", "-server", "nats://"+natsAddr, "events", "hello from NATS").CombinedOutput(); err != nil {
		t.Fatalf("ssegate publish: %v\n%s", err, out)
	}
	select {
	case ev := <-events:
		if ev.Data != "hello from NATS" {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(wait):
		t.Fatal("no event")
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range events { // the stream ends
	}
	if !strings.HasSuffix(raw.String(), ": ssegate is shutting down; reconnect\n") {
		t.Errorf("stream ended without the final comment: %q", raw.String())
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("did not exit after SIGTERM")
	}
	t.Logf("shut down in %v", time.Since(start))
	waitLog(t, logs, `"stopped"`)
}

func waitLog(t *testing.T, logs <-chan string, want string) {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case line, ok := <-logs:
			if !ok {
				t.Fatalf("log ended before %q", want)
			}
			if strings.Contains(line, want) {
				return
			}
		case <-timeout:
			t.Fatalf("no log line with %q", want)
		}
	}
}
