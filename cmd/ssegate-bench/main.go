// Command ssegate-bench is ssegate's load tool: it opens SSE connections to
// a route, publishes numbered, timestamped events through NATS, and reports
// what the clients received (missing, duplicate, out of order, latency)
// and what serving them cost ssegate (RSS per connection, CPU time per
// delivered event, read from /proc). It only talks to loopback addresses,
// and every phase is bounded in time. The last line of its output is JSON.
//
//	ssegate-bench -url http://127.0.0.1:8080/sse -nats nats://127.0.0.1:4222 \
//	    -subject events -pid $(pgrep -x ssegate) -clients 1000 -messages 2000 -rate 200
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ssegate-bench:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	url, natsURL, subject string
	pid                   int
	clients, connectRate  int
	messages, rate, size  int
	settle, timeout       time.Duration
	idle                  time.Duration
	h2c                   bool
	sources               int
	distinct              bool
	topics                int
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("ssegate-bench", flag.ContinueOnError)
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080/sse", "the route to open, on a loopback address")
	fs.StringVar(&o.natsURL, "nats", "nats://127.0.0.1:4222", "NATS to publish to, on a loopback address")
	fs.StringVar(&o.subject, "subject", "events", "the subject the route reads")
	fs.IntVar(&o.pid, "pid", 0, "ssegate's process id, for its RSS and CPU time (0: not measured)")
	fs.IntVar(&o.clients, "clients", 100, "SSE connections to open")
	fs.IntVar(&o.sources, "sources", 1, "IPv4 loopback source addresses to spread HTTP/1.1 connections over (127.0.0.1 up): one has about 28,000 ports")
	fs.BoolVar(&o.h2c, "h2c", false, "open the streams over cleartext HTTP/2 (ssegate's h2c = true), many to a connection")
	fs.BoolVar(&o.distinct, "distinct", false, "a stream of its own for each client: client i opens the URL with /i added (a route like /u/{n}), as per-user routes do")
	fs.IntVar(&o.topics, "topics", 0, "a set of topics of its own for each client: client i opens the URL with ?topic=i-0&topic=i-1... (a route with a topics block), this many")
	fs.IntVar(&o.connectRate, "connect-rate", 2000, "connections opened per second at most")
	fs.IntVar(&o.messages, "messages", 1000, "events to publish (0: none, to measure idle streams)")
	fs.IntVar(&o.rate, "rate", 200, "events published per second")
	fs.IntVar(&o.size, "size", 100, "bytes of each event's data")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "wait after connecting, before measuring memory")
	fs.DurationVar(&o.idle, "idle", 0, "hold the idle connections this long before publishing")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long the last events may take to arrive")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, raw := range []string{o.url, o.natsURL} {
		u, err := url.Parse(raw)
		if err != nil {
			return o, fmt.Errorf("%q: %w", raw, err)
		}
		if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return o, fmt.Errorf("%q is not a loopback address: the load tool only loads this machine", raw)
		}
	}
	if (o.distinct || o.topics > 0) && o.messages > 0 {
		return o, fmt.Errorf("-distinct and -topics measure idle streams: give -messages 0")
	}
	if o.sources < 1 || o.sources > 254 {
		return o, fmt.Errorf("-sources must be from 1 to 254")
	}
	if o.sources > 1 {
		// 127.0.0.2 and up are this machine's only where all of 127/8 is
		// loopback (Linux), and only reach an IPv4 address.
		u, _ := url.Parse(o.url)
		if ip := net.ParseIP(u.Hostname()); ip == nil || ip.To4() == nil || runtime.GOOS != "linux" {
			return o, fmt.Errorf("-sources above 1 needs Linux and an IPv4 loopback address in -url")
		}
	}
	if o.clients < 1 || o.connectRate < 1 || o.messages < 0 || o.rate < 1 || o.size < 40 || o.size > maxEventSize {
		return o, fmt.Errorf("-clients, -connect-rate and -rate must be positive, -messages not negative, -size from 40 to %d", maxEventSize)
	}
	return o, nil
}

// Report is the JSON line the command ends with.
type Report struct {
	Clients          int     `json:"clients"`
	Connected        int     `json:"connected"`
	Failed           int     `json:"failed"`
	Disconnected     int     `json:"disconnected"`
	ConnectSeconds   float64 `json:"connect_seconds"`
	Published        int     `json:"published"`
	PublishRate      float64 `json:"publish_rate"`
	Delivered        int64   `json:"delivered"`
	DeliveredPerSec  float64 `json:"delivered_per_second"`
	Missing          int64   `json:"missing"`
	Duplicates       int64   `json:"duplicates"`
	OutOfOrder       int64   `json:"out_of_order"`
	LatencyP50Ms     float64 `json:"latency_p50_ms"`
	LatencyP90Ms     float64 `json:"latency_p90_ms"`
	LatencyP99Ms     float64 `json:"latency_p99_ms"`
	LatencyMaxMs     float64 `json:"latency_max_ms"`
	RSSBeforeKiB     int64   `json:"rss_before_kib,omitempty"`
	RSSConnectedKiB  int64   `json:"rss_connected_kib,omitempty"`
	RSSPerConnKiB    float64 `json:"rss_per_connection_kib,omitempty"`
	CPUSeconds       float64 `json:"server_cpu_seconds,omitempty"`
	CPUPerEventMicro float64 `json:"server_cpu_per_event_us,omitempty"`
}

func run(args []string, out io.Writer) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	proc := procStats{pid: o.pid}
	var r Report
	r.Clients = o.clients
	r.RSSBeforeKiB = proc.rss()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	shared := &counters{messages: o.messages}
	clients, connectTime := connectAll(ctx, o, shared)
	r.ConnectSeconds = connectTime.Seconds()
	time.Sleep(o.settle)
	// A stream that already ended was turned away (ssegate answers 200,
	// a retry: hint and the end when it cannot serve one now).
	for _, c := range clients {
		if c.err == nil && c.ended.Load() {
			c.err = errors.New("the stream ended at once: turned away")
		}
		if c.err == nil {
			r.Connected++
		} else {
			r.Failed++
		}
	}
	fmt.Fprintf(out, "connected %d of %d in %.1fs\n", r.Connected, o.clients, r.ConnectSeconds)
	if rss := proc.rss(); rss > 0 {
		r.RSSConnectedKiB = rss
		r.RSSPerConnKiB = float64(rss-r.RSSBeforeKiB) / float64(max(r.Connected, 1))
		fmt.Fprintf(out, "ssegate RSS %d KiB before, %d KiB with the connections: %.2f KiB each\n", r.RSSBeforeKiB, rss, r.RSSPerConnKiB)
	}
	time.Sleep(o.idle)

	if o.messages > 0 {
		cpu0 := proc.cpu()
		start := time.Now()
		if err := publish(ctx, o); err != nil {
			return err
		}
		r.Published = o.messages
		r.PublishRate = float64(o.messages) / time.Since(start).Seconds()
		want := int64(o.messages) * int64(r.Connected)
		deadline := time.Now().Add(o.timeout)
		for shared.got.Load() < want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		cpu := proc.cpu() - cpu0
		elapsed := time.Duration(shared.lastAt.Load()) - time.Duration(start.UnixNano())
		r.Delivered = shared.got.Load()
		if elapsed > 0 {
			r.DeliveredPerSec = float64(r.Delivered) / elapsed.Seconds()
		}
		if o.pid != 0 && r.Delivered > 0 {
			r.CPUSeconds = cpu.Seconds()
			r.CPUPerEventMicro = float64(cpu.Microseconds()) / float64(r.Delivered)
		}
		var lat []time.Duration
		for _, c := range clients {
			c.mu.Lock()
			r.Duplicates += c.dups
			r.OutOfOrder += c.outOfOrder
			if c.err == nil {
				r.Missing += int64(o.messages) - c.distinct
				if c.ended.Load() {
					r.Disconnected++
				}
			}
			lat = append(lat, c.latency...)
			c.mu.Unlock()
		}
		slices.Sort(lat)
		pct := func(p float64) float64 {
			if len(lat) == 0 {
				return 0
			}
			return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
		}
		r.LatencyP50Ms, r.LatencyP90Ms, r.LatencyP99Ms = pct(0.50), pct(0.90), pct(0.99)
		if len(lat) > 0 {
			r.LatencyMaxMs = float64(lat[len(lat)-1].Microseconds()) / 1000
		}
		fmt.Fprintf(out, "published %d at %.0f/s; delivered %d (%.0f/s), missing %d, duplicates %d, out of order %d\n",
			r.Published, r.PublishRate, r.Delivered, r.DeliveredPerSec, r.Missing, r.Duplicates, r.OutOfOrder)
		fmt.Fprintf(out, "latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n", r.LatencyP50Ms, r.LatencyP90Ms, r.LatencyP99Ms, r.LatencyMaxMs)
		if r.CPUSeconds > 0 {
			fmt.Fprintf(out, "ssegate CPU %.2f s: %.2f µs per delivered event\n", r.CPUSeconds, r.CPUPerEventMicro)
		}
	}
	cancel()
	for _, c := range clients {
		if c.conn != nil {
			c.conn.Close()
		}
	}
	return json.NewEncoder(out).Encode(r)
}

// publish sends o.messages events at o.rate, each "<seq> <unix ns>"
// padded to o.size bytes.
func publish(ctx context.Context, o options) error {
	// Only the server named: a cluster may advertise others, off loopback.
	nc, err := nats.Connect(o.natsURL, nats.Name("ssegate-bench"), nats.IgnoreDiscoveredServers())
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	start := time.Now()
	interval := time.Second / time.Duration(o.rate)
	buf := make([]byte, 0, o.size)
	for i := range o.messages {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		buf = strconv.AppendInt(buf[:0], int64(i), 10)
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
		buf = append(buf, ' ')
		for len(buf) < o.size {
			buf = append(buf, 'x')
		}
		if err := nc.Publish(o.subject, buf); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	return nc.FlushTimeout(10 * time.Second)
}
