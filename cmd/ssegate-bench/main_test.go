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

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/proxy"
	"github.com/ssegate/ssegate/proxy/config"
)

// The tool against a real ssegate on loopback, over HTTP/1.1 and over
// cleartext HTTP/2: every client gets every event once, in order, and the
// report says so in its last line.
// serve runs ssegate with the config text on ns, over HTTP/1.1 and
// cleartext HTTP/2 on loopback, until the test ends, and returns its URL.
func serve(t *testing.T, ns *server.Server, text string) string {
	t.Helper()
	cfg, err := config.Parse([]byte(text), "bench.hcl")
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(cfg, proxy.WithNATS(nc))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.Protocols = new(http.Protocols)
	ts.Config.Protocols.SetHTTP1(true)
	ts.Config.Protocols.SetUnencryptedHTTP2(true)
	ts.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		ts.Close()
		nc.Close()
	})
	return ts.URL
}

// report runs the tool with args and returns its report, the last line.
func report(t *testing.T, args ...string) (Report, string) {
	t.Helper()
	var out bytes.Buffer
	if err := run(args, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var r Report
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
	}
	return r, out.String()
}

func TestBenchAgainstSSEGate(t *testing.T) {
	t.Parallel()
	ns := loopback.NATS(t, "")
	url := serve(t, ns, `route "/sse" {
  buffer = 1000
  source "nats" { subject = "bench" }
}`)
	for _, h2c := range []bool{false, true} {
		t.Run(fmt.Sprint("h2c=", h2c), func(t *testing.T) {
			args := []string{
				"-url", url + "/sse", "-nats", ns.ClientURL(), "-subject", "bench",
				"-pid", strconv.Itoa(os.Getpid()), "-clients", "20", "-messages", "100", "-rate", "2000",
				"-settle", "10ms", "-timeout", "10s", fmt.Sprint("-h2c=", h2c),
			}
			if runtime.GOOS == "linux" {
				args = append(args, "-sources", "3") // HTTP/1.1 from 127.0.0.1 to .3; HTTP/2 ignores it
			}
			r, out := report(t, args...)
			if r.Connected != 20 || r.Failed != 0 || r.Delivered != 2000 || r.Missing != 0 || r.Duplicates != 0 || r.OutOfOrder != 0 {
				t.Fatalf("report %+v\n%s", r, out)
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

// Slow clients next to fast ones, on a route that drops a slow client's
// oldest events: the fast ones get every event, each slow one the newest
// of every key, and the report keeps them apart. (On a route that
// conflates, a fast client a moment behind may miss an event that a
// newer one of its key replaced, as "latest" promises.)
func TestBenchSlowClients(t *testing.T) {
	t.Parallel()
	ns := loopback.NATS(t, "")
	url := serve(t, ns, `route "/drop" {
  buffer        = 1000
  slow_consumer = "drop"
  source "nats" { subject = "bench.*" }
}`)
	r, out := report(t,
		"-url", url+"/drop", "-nats", ns.ClientURL(), "-subject", "bench", "-keys", "5",
		"-pid", strconv.Itoa(os.Getpid()), "-clients", "12", "-slow", "3", "-messages", "200", "-rate", "2000",
		"-settle", "10ms", "-timeout", "20s",
	)
	if r.Connected != 12 || r.Slow != 3 || r.Missing != 0 || r.Duplicates != 0 || r.SlowStale != 0 || r.SlowDisconnected != 0 {
		t.Fatalf("report %+v\n%s", r, out)
	}
	if r.SlowDelivered < 3*5 || r.Delivered != 9*200+r.SlowDelivered || r.RSSPeakKiB <= 0 {
		t.Fatalf("report %+v", r)
	}
}

// The last event of each key, as the slow clients' accounting expects.
func TestLastOfKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		messages, keys, k int
		want              int64
	}{{10, 3, 0, 9}, {10, 3, 1, 7}, {10, 3, 2, 8}, {2, 3, 2, -1}, {1, 1, 0, 0}} {
		if got := lastOfKey(tc.messages, tc.keys, tc.k); got != tc.want {
			t.Errorf("lastOfKey(%d, %d, %d) = %d, want %d", tc.messages, tc.keys, tc.k, got, tc.want)
		}
	}
}

// The revocation figure: streams on two replicas, a revocation published
// to the control subject, each stream's end timed.
func TestBenchRevoke(t *testing.T) {
	t.Parallel()
	ns := loopback.NATS(t, "")
	const cfg = `route "/u/{n}" {
  source "nats" { subject = "u.${path.n}" }
}`
	urls := serve(t, ns, cfg) + "/u," + serve(t, ns, cfg) + "/u"
	r, out := report(t,
		"-url", urls, "-nats", ns.ClientURL(), "-distinct", "-messages", "0",
		"-clients", "20", "-settle", "10ms", "-timeout", "20s", "-revoke", `{"all": true}`,
	)
	if r.Connected != 20 || r.Revoked != 20 || r.RevokeMaxMs <= 0 || r.RevokeP50Ms > r.RevokeMaxMs {
		t.Fatalf("report %+v\n%s", r, out)
	}
}

// The configs bench/README.md runs with load as they are.
func TestBenchConfigsLoad(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"../../bench/bench.hcl", "../../bench/bench-replica.hcl"} {
		if _, err := config.Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// The presence figure: clients spread over streams, replaced at a rate,
// with the presence events counted on NATS.
func TestBenchChurn(t *testing.T) {
	t.Parallel()
	ns := loopback.NATS(t, "")
	url := serve(t, ns, `route "/rooms/{n}" {
  presence { subject = "presence.rooms.${path.n}" }
  source "nats" { subject = "rooms.${path.n}" }
}`)
	r, out := report(t,
		"-url", url+"/rooms", "-nats", ns.ClientURL(), "-streams", "5", "-messages", "0",
		"-pid", strconv.Itoa(os.Getpid()), "-clients", "20", "-settle", "10ms",
		"-churn", "100", "-churn-for", "300ms", "-watch", "presence.rooms.>",
	)
	if r.Connected != 20 || r.Joined < 10 || r.WatchMessages < int64(r.Joined) || r.WatchBytes <= r.WatchMessages || r.ChurnCPU <= 0 {
		t.Fatalf("report %+v\n%s", r, out)
	}
}
