package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// runHealth is `ssegate health`: it asks a running ssegate's admin
// listener whether it is alive (/healthz) or, with -ready, ready for
// clients (/readyz), and exits 0 if so. The image's HEALTHCHECK runs it:
// a distroless image has no curl.
func runHealth(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("health", stdout)
	admin := fs.String("admin", "http://127.0.0.1:9090", "the running ssegate's admin listener")
	ready := fs.Bool("ready", false, "ask /readyz (ready for clients: NATS connected, not shutting down) rather than /healthz (alive)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long the answer may take")
	if code, done := parseOnlyFlags(fs, args, stderr); done {
		return code
	}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	hc := &http.Client{Timeout: *timeout}
	resp, err := hc.Get(strings.TrimSuffix(*admin, "/") + path)
	if err != nil {
		fmt.Fprintln(stderr, "ssegate health:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "ssegate health: %s: %s\n", resp.Status, strings.TrimSpace(string(body)))
		return 1
	}
	fmt.Fprintln(stdout, strings.TrimSpace(string(body)))
	return 0
}
