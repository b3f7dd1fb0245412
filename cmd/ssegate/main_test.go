package main

import (
	"bufio"
	"bytes"
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

	"github.com/nats-io/nats.go"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/internal/ssetest"
)

const wait = 20 * time.Second

func TestValidate(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if code := run([]string{"validate", "-config", "../../config.example.hcl"}, &out, &errOut); code != 0 {
		t.Fatalf("validate example: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "valid, 8 route(s)") {
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

// help, help COMMAND and COMMAND -h print to stdout and exit 0; a
// mistake prints to stderr and exits 2; a missing config says where
// ssegate looked and how to point it at one.
func TestHelpAndMistakes(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if code := run([]string{"help"}, &out, &errOut); code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	for _, c := range commands() {
		if !strings.Contains(out.String(), "ssegate "+c.name) {
			t.Errorf("help does not list %s:\n%s", c.name, out.String())
		}
	}
	for _, c := range commands() {
		if c.run == nil {
			continue
		}
		for _, args := range [][]string{{"help", c.name}, {c.name, "-h"}} {
			out.Reset()
			errOut.Reset()
			if code := run(args, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "usage: ssegate "+c.name) || errOut.Len() > 0 {
				t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out.String(), errOut.String())
			}
		}
	}
	out.Reset()
	if code := run([]string{"help", "publish"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "-file") || !strings.Contains(out.String(), `default "nats://127.0.0.1:4222"`) {
		t.Errorf("publish's flags with their defaults: %q", out.String())
	}
	errOut.Reset()
	if code := run([]string{"validate", "-nope"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "flag provided but not defined: -nope") {
		t.Errorf("unknown flag: exit %d, %q", code, errOut.String())
	}
	errOut.Reset()
	missing := filepath.Join(t.TempDir(), "ssegate.hcl")
	if code := run([]string{"validate", "-config", missing}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "no config file at "+missing) || !strings.Contains(errOut.String(), "SSEGATE_CONFIG") {
		t.Errorf("missing config: exit %d, %q", code, errOut.String())
	}
}

// publish sends headers and a payload from a file or stdin exactly, and
// says what it published.
func TestPublishHeadersAndFile(t *testing.T) {
	t.Parallel()
	ns := loopback.NATS(t, "")
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("quotes")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	payload := filepath.Join(t.TempDir(), "payload")
	if err := os.WriteFile(payload, []byte("line 1\r\nline 2\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"publish", "-server", ns.ClientURL(), "-header", "Ssegate-Event: quote", "-header", "Ssegate-Id: q-1", "-file", payload, "quotes"}, &out, &errOut); code != 0 {
		t.Fatalf("publish: exit %d, %q", code, errOut.String())
	}
	if want := "published 15 bytes to quotes with Ssegate-Event: quote, Ssegate-Id: q-1\n"; out.String() != want {
		t.Errorf("publish said %q, want %q", out.String(), want)
	}
	m, err := sub.NextMsg(wait)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "line 1\r\nline 2\x00" || m.Header.Get("Ssegate-Event") != "quote" || m.Header.Get("Ssegate-Id") != "q-1" {
		t.Errorf("received %q with %v", m.Data, m.Header)
	}
}

func TestVersionAndUsage(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "ssegate ") {
		t.Errorf("version: exit %d, %q", code, out.String())
	}
	if code := run([]string{"frobnicate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Errorf("unknown command: exit %d, %q", code, errOut.String())
	}
	errOut.Reset()
	// Flags end at the first argument: this must not run the proxy.
	if code := run([]string{"-config", "../../config.example.hcl", "validate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unexpected argument "validate"`) {
		t.Errorf("command after flags: exit %d, %q", code, errOut.String())
	}
}

// The quick start as a user runs it: the built binary on a config with the
// embedded NATS server, a stream read with curl-like plain HTTP, an event
// published with `ssegate publish`, SIGTERM closing the stream and exiting
// cleanly, and a browser's resume against the restarted proxy.
func TestRunPublishSignalAndRestart(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	httpAddr, natsAddr, adminAddr := loopback.FreeAddr(t), loopback.FreeAddr(t), loopback.FreeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "ssegate.hcl")
	cfg := fmt.Sprintf(`
listen           = %q
shutdown_timeout = "5s"
shutdown_delay   = "1s"
log { format = "json" }
admin { listen = %q }
nats {
  embedded { listen = %q }
}
route "/sse" {
  retry = "2s"
  source "nats" { subject = "events" }
}
`, httpAddr, adminAddr, natsAddr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	first, logs := startProxy(t, bin, cfgPath)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + adminAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("admin %s = %d", path, resp.StatusCode)
		}
	}
	stream := openStream(t, "http://"+httpAddr+"/sse", "")
	publishWith(t, bin, natsAddr, "hello from NATS")
	ev := stream.Next()
	if ev.Data != "hello from NATS" || ev.LastEventID == "" {
		t.Fatalf("event %+v", ev)
	}

	start := time.Now()
	if err := first.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Through shutdown_delay the proxy says it is not ready, and serves on.
	for code, deadline := 0, time.Now().Add(wait); code != http.StatusServiceUnavailable; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("readyz still answers %d after SIGTERM", code)
		}
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err != nil {
			t.Fatalf("readyz after SIGTERM: %v (answered %d before)", err, code)
		}
		resp.Body.Close()
		code = resp.StatusCode
	}
	publishWith(t, bin, natsAddr, "during the delay")
	if ev := stream.Next(); ev.Data != "during the delay" {
		t.Fatalf("event %+v", ev)
	}
	stream.WaitEnd()
	if !strings.HasSuffix(stream.Raw(), ": ssegate is shutting down; reconnect\n") {
		t.Errorf("stream ended without the final comment: %q", stream.Raw())
	}
	done := make(chan error, 1)
	go func() { done <- first.Wait() }()
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

	// EventSource reconnects to the restarted proxy with the id it saw
	// last: the history went with the old process, so it is told to
	// reload, then gets live events.
	startProxy(t, bin, cfgPath)
	stream = openStream(t, "http://"+httpAddr+"/sse", ev.LastEventID)
	if reset := stream.Next(); reset.Type != "ssegate-reset" {
		t.Fatalf("resume after restart: got %+v, want a reset event", reset)
	}
	publishWith(t, bin, natsAddr, "after restart")
	if ev := stream.Next(); ev.Data != "after restart" {
		t.Fatalf("event %+v", ev)
	}
}

// buildBinary builds ssegate for a test that runs it.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "ssegate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startProxy runs the binary on cfgPath until it serves; the process is
// killed at the end of the test if it is still running.
func startProxy(t *testing.T, bin, cfgPath string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(bin, "-config", cfgPath)
	// Not StderrPipe: Wait closes that pipe as the process exits, maybe
	// before its last lines were read. Wait returns only once everything
	// written to a writer of ours has been copied.
	stderr, w := io.Pipe()
	cmd.Stderr = w
	t.Cleanup(func() { w.Close() })
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	logs := make(chan string, 1000)
	go func() {
		defer close(logs)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case logs <- sc.Text():
			default: // nobody is waiting for more lines
			}
		}
	}()
	waitLog(t, logs, "ssegate serving")
	return cmd, logs
}

// openStream reads url as an event stream, resuming after lastID unless
// it is empty.
func openStream(t *testing.T, url, lastID string) *ssetest.Stream {
	t.Helper()
	h := http.Header{}
	if lastID != "" {
		h.Set("Last-Event-ID", lastID)
	}
	s := ssetest.Open(t, http.DefaultClient, url, h)
	s.Wait = wait
	return s
}

func publishWith(t *testing.T, bin, natsAddr, data string) {
	t.Helper()
	if out, err := exec.Command(bin, "publish", "-server", "nats://"+natsAddr, "events", data).CombinedOutput(); err != nil {
		t.Fatalf("ssegate publish: %v\n%s", err, out)
	}
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
