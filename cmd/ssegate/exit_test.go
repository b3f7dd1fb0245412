package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ssegate/ssegate/internal/loopback"
)

// A client that sent bytes after its request (which nobody reads) and is
// slow to read gets everything queued for it, the goodbye and a clean
// end when the process shuts down and exits: the process waits for the
// client to close its side instead of leaving the kernel to reset the
// connection, which would destroy what the client had not read yet.
func TestExitAfterSIGTERMEndsStreamsCleanly(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	httpAddr, natsAddr := loopback.FreeAddr(t), loopback.FreeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "ssegate.hcl")
	cfg := fmt.Sprintf(`
listen           = %q
shutdown_timeout = "60s" # a busy machine is slow, not wrong: nothing is cut here
nats {
  embedded { listen = %q }
}
route "/sse" {
  buffer = 1000
  source "nats" { subject = "events" }
}
`, httpAddr, natsAddr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	proc, _ := startProxy(t, bin, cfgPath)

	conn, err := net.Dial("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
	br := bufio.NewReader(conn)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %v", err)
	}
	// After the head, so that the bytes stay in the socket, unread.
	if _, err := conn.Write([]byte("unexpected")); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// More than the socket buffers hold, so most is still queued when
	// the signal comes.
	payload := strings.Repeat("x", 400<<10)
	for i := range 30 {
		if err := nc.Publish("events", fmt.Appendf(nil, "%d %s", i, payload)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Publish("events", []byte("last")); err != nil {
		t.Fatal(err)
	}
	// NATS has every event once the flush returns; the shutdown drains
	// the subscription, so all of them reach the stream before its end.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// Nothing read yet: most of the 12 MB is still queued in ssegate.
	if err := proc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	_ = conn.SetReadDeadline(time.Now().Add(wait))
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("the stream ended with %v after %d bytes, not a clean end", err, len(rest))
	}
	if !strings.Contains(string(rest), "data: last\n") || !strings.HasSuffix(string(rest), ": ssegate is shutting down; reconnect\n") {
		t.Errorf("the stream's end was %q", rest[max(0, len(rest)-200):])
	}
	conn.Close()
	if err := proc.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}
