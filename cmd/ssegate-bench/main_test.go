package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/proxy"
	"github.com/ssegate/ssegate/proxy/config"
)

// The tool against a real ssegate on loopback, over HTTP/1.1 and over
// cleartext HTTP/2: every client gets every event once, in order, and the
// report says so in its last line.
func TestBenchAgainstSSEGate(t *testing.T) {
	t.Parallel()
	ns := loopback.NATS(t, "")
	cfg, err := config.Parse([]byte(`route "/sse" {
  buffer = 1000
  source "nats" { subject = "bench" }
}`), "bench.hcl")
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	srv, err := proxy.New(cfg, proxy.WithNATS(nc))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.Protocols = new(http.Protocols)
	ts.Config.Protocols.SetHTTP1(true)
	ts.Config.Protocols.SetUnencryptedHTTP2(true)
	ts.Start()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		ts.Close()
	}()

	for _, h2c := range []bool{false, true} {
		t.Run(fmt.Sprint("h2c=", h2c), func(t *testing.T) {
			args := []string{
				"-url", ts.URL + "/sse", "-nats", ns.ClientURL(), "-subject", "bench",
				"-pid", strconv.Itoa(os.Getpid()), "-clients", "20", "-messages", "100", "-rate", "2000",
				"-settle", "10ms", "-timeout", "10s", fmt.Sprint("-h2c=", h2c),
			}
			if runtime.GOOS == "linux" {
				args = append(args, "-sources", "3") // HTTP/1.1 from 127.0.0.1 to .3; HTTP/2 ignores it
			}
			var out bytes.Buffer
			err = run(args, &out)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			var r Report
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
				t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
			}
			if r.Connected != 20 || r.Failed != 0 || r.Delivered != 2000 || r.Missing != 0 || r.Duplicates != 0 || r.OutOfOrder != 0 {
				t.Fatalf("report %+v\n%s", r, out.String())
			}
			if r.LatencyP50Ms <= 0 || r.LatencyMaxMs < r.LatencyP99Ms || r.RSSConnectedKiB <= 0 {
				t.Fatalf("report %+v", r)
			}
		})
	}
}

func TestRefusesOtherHosts(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-url", "http://example.com/sse"},
		{"-nats", "nats://10.0.0.1:4222"},
		{"-clients", "0"},
		{"-url", "http://[::1]:8080/sse", "-sources", "2"},
	} {
		if _, err := parse(args); err == nil {
			t.Errorf("parse(%q) accepted", args)
		}
	}
}

func TestParseCPU(t *testing.T) {
	t.Parallel()
	// A command name with spaces and parentheses, then 250 + 50 ticks.
	stat := "1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 100 1000 50"
	if got := parseCPU([]byte(stat)); got != 3*time.Second {
		t.Fatalf("parseCPU = %v", got)
	}
}

// A client's accounting: a swap is one out-of-order event, not a
// duplicate or a loss; a gap is a loss only; a repeat is a duplicate.
func TestClientAccounting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		seqs                       []int
		distinct, dups, outOfOrder int64
	}{
		{[]int{0, 2, 1, 3}, 4, 0, 1},
		{[]int{0, 2, 3}, 3, 0, 0},
		{[]int{0, 1, 1, 2, 3}, 4, 1, 0},
	} {
		c := &client{counters: &counters{messages: 4}, seen: make([]uint64, 1), highest: -1}
		var stream strings.Builder
		for _, s := range tc.seqs {
			fmt.Fprintf(&stream, "id: x\ndata: %d %d pad\n\n", s, time.Now().UnixNano())
		}
		c.read(bufio.NewReader(strings.NewReader(stream.String())))
		if c.distinct != tc.distinct || c.dups != tc.dups || c.outOfOrder != tc.outOfOrder || !c.ended.Load() {
			t.Errorf("%v: distinct %d, dups %d, out of order %d", tc.seqs, c.distinct, c.dups, c.outOfOrder)
		}
	}
}
