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
	"strings"
	"sync/atomic"
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
	urls                  []string // url's, split at commas: replicas the clients take in turn
	pid                   int
	clients, connectRate  int
	messages, rate, size  int
	settle, timeout       time.Duration
	idle                  time.Duration
	h2c                   bool
	sources               int
	distinct              bool
	topics                int
	slow, keys            int
	revoke, control       string
	streams               int
	churn                 int
	churnFor              time.Duration
	watch                 string
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("ssegate-bench", flag.ContinueOnError)
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080/sse", "the route to open, on a loopback address; several, separated by commas, are replicas the clients take in turn")
	fs.StringVar(&o.natsURL, "nats", "nats://127.0.0.1:4222", "NATS to publish to, on a loopback address")
	fs.StringVar(&o.subject, "subject", "events", "the subject the route reads")
	fs.IntVar(&o.pid, "pid", 0, "ssegate's process id, for its RSS and CPU time (0: not measured)")
	fs.IntVar(&o.clients, "clients", 100, "SSE connections to open")
	fs.IntVar(&o.sources, "sources", 1, "IPv4 loopback source addresses to spread HTTP/1.1 connections over (127.0.0.1 up): one has about 28,000 ports")
	fs.BoolVar(&o.h2c, "h2c", false, "open the streams over cleartext HTTP/2 (ssegate's h2c = true), many to a connection")
	fs.BoolVar(&o.distinct, "distinct", false, "a stream of its own for each client: client i opens the URL with /i added (a route like /u/{n}), as per-user routes do")
	fs.IntVar(&o.topics, "topics", 0, "a set of topics of its own for each client: client i opens the URL with ?topic=i-0&topic=i-1... (a route with a topics block), this many")
	fs.IntVar(&o.slow, "slow", 0, "clients, of -clients, that read at a tenth of -rate, with small socket buffers (HTTP/1.1): what a route's slow_consumer policy is for")
	fs.IntVar(&o.keys, "keys", 0, "publish event i to -subject followed by .(i mod keys), as a keyed state feed does (0: to -subject)")
	fs.StringVar(&o.revoke, "revoke", "", `after connecting, publish this revocation to -control.revoke (like {"all": true}) and measure how long each stream takes to end`)
	fs.StringVar(&o.control, "control", "ssegate.control", "ssegate's control subject (nats { control_subject })")
	fs.IntVar(&o.streams, "streams", 0, "spread the clients over this many streams: client i opens the URL with /(i mod streams) added (a route like /rooms/{n})")
	fs.IntVar(&o.churn, "churn", 0, "after connecting, replace this many clients a second (one leaves, one joins a stream at random), for -churn-for, and report ssegate's CPU per join")
	fs.DurationVar(&o.churnFor, "churn-for", 30*time.Second, "how long -churn goes on")
	fs.StringVar(&o.watch, "watch", "", "count the messages and bytes on this NATS subject (wildcards allowed) while -churn goes on: what presence events cost NATS")
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
	o.urls = strings.Split(o.url, ",")
	for _, raw := range append([]string{o.natsURL}, o.urls...) {
		u, err := url.Parse(raw)
		if err != nil {
			return o, fmt.Errorf("%q: %w", raw, err)
		}
		if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return o, fmt.Errorf("%q is not a loopback address: the load tool only loads this machine", raw)
		}
	}
	if (o.distinct || o.topics > 0 || o.revoke != "" || o.streams > 0 || o.churn > 0) && o.messages > 0 {
		return o, fmt.Errorf("-distinct, -streams, -topics, -churn and -revoke measure idle streams: give -messages 0")
	}
	if o.streams < 0 || o.churn < 0 || (o.churn > 0 && o.h2c) || (o.streams > 0 && o.distinct) {
		return o, fmt.Errorf("-streams and -churn must not be negative; -churn is over HTTP/1.1; -streams and -distinct exclude each other")
	}
	if o.sources < 1 || o.sources > 254 {
		return o, fmt.Errorf("-sources must be from 1 to 254")
	}
	if o.sources > 1 {
		// 127.0.0.2 and up are this machine's only where all of 127/8 is
		// loopback (Linux), and only reach an IPv4 address.
		u, _ := url.Parse(o.urls[0])
		if ip := net.ParseIP(u.Hostname()); len(o.urls) > 1 || ip == nil || ip.To4() == nil || runtime.GOOS != "linux" {
			return o, fmt.Errorf("-sources above 1 needs Linux and one IPv4 loopback address in -url")
		}
	}
	if o.slow < 0 || o.slow > o.clients || o.keys < 0 || (o.slow > 0 && o.h2c) {
		return o, fmt.Errorf("-slow must be from 0 to -clients, over HTTP/1.1; -keys not negative")
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
	RSSPeakKiB       int64   `json:"rss_peak_kib,omitempty"` // while events flow
	CPUSeconds       float64 `json:"server_cpu_seconds,omitempty"`
	CPUPerEventMicro float64 `json:"server_cpu_per_event_us,omitempty"`

	// The slow clients (-slow) are left out of the figures above but
	// Delivered and the CPU per event: what they get is their route's
	// slow_consumer policy's.
	Slow             int   `json:"slow_clients,omitempty"`
	SlowDelivered    int64 `json:"slow_delivered,omitempty"`
	SlowDisconnected int   `json:"slow_disconnected,omitempty"`
	SlowGaps         int64 `json:"slow_gap_events,omitempty"`
	// SlowStale counts, over the slow clients still connected at the end,
	// the keys whose newest event they never got (the last event, without
	// -keys): "latest" and "drop" promise none.
	SlowStale int64 `json:"slow_stale,omitempty"`

	// With -revoke: how many streams ended after the revocation was
	// published, and how long each took.
	Revoked     int     `json:"revoked,omitempty"`
	RevokeP50Ms float64 `json:"revoke_p50_ms,omitempty"`
	RevokeP99Ms float64 `json:"revoke_p99_ms,omitempty"`
	RevokeMaxMs float64 `json:"revoke_max_ms,omitempty"`

	// With -churn: clients that joined (as many left), ssegate's CPU over
	// that time and per join, and with -watch what NATS carried on the
	// watched subject meanwhile.
	Joined        int     `json:"joined,omitempty"`
	ChurnCPU      float64 `json:"churn_cpu_seconds,omitempty"`
	CPUPerJoinUs  float64 `json:"cpu_per_join_us,omitempty"`
	WatchMessages int64   `json:"watch_messages,omitempty"`
	WatchBytes    int64   `json:"watch_bytes,omitempty"`
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
	shared := &counters{messages: o.messages, keys: o.keys, size: o.size}
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

	if o.churn > 0 {
		if err := churnAll(ctx, o, shared, clients, proc, &r); err != nil {
			return err
		}
		fmt.Fprintf(out, "churn: %d joins and as many leaves in %v; ssegate CPU %.2f s, %.1f µs a join; %s: %d messages, %d bytes\n",
			r.Joined, o.churnFor, r.ChurnCPU, r.CPUPerJoinUs, o.watch, r.WatchMessages, r.WatchBytes)
	}
	if o.revoke != "" {
		if err := revokeAll(o, clients, &r); err != nil {
			return err
		}
		fmt.Fprintf(out, "revoked %d of %d streams: p50 %.1f ms, p99 %.1f ms, max %.1f ms after the revocation was published\n",
			r.Revoked, r.Connected, r.RevokeP50Ms, r.RevokeP99Ms, r.RevokeMaxMs)
	}
	if o.messages > 0 {
		cpu0 := proc.cpu()
		peak := proc.sample(ctx, 100*time.Millisecond)
		start := time.Now()
		if err := publish(ctx, o); err != nil {
			return err
		}
		r.Published = o.messages
		r.PublishRate = float64(o.messages) / time.Since(start).Seconds()
		deadline := time.Now().Add(o.timeout)
		for !caughtUp(clients) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		cpu := proc.cpu() - cpu0
		r.RSSPeakKiB = peak()
		elapsed := time.Duration(shared.lastAt.Load()) - time.Duration(start.UnixNano())
		r.Delivered = shared.got.Load() + shared.slowGot.Load()
		if elapsed > 0 {
			r.DeliveredPerSec = float64(r.Delivered) / elapsed.Seconds()
		}
		if o.pid != 0 && r.Delivered > 0 {
			r.CPUSeconds = cpu.Seconds()
			r.CPUPerEventMicro = float64(cpu.Microseconds()) / float64(r.Delivered)
		}
		var lat []time.Duration
		for _, c := range clients {
			if c.err != nil {
				continue
			}
			c.mu.Lock()
			if c.slow {
				r.Slow++
				r.SlowGaps += c.gaps
				if c.ended.Load() {
					r.SlowDisconnected++
				} else {
					r.SlowStale += c.staleKeys()
				}
			} else {
				r.Duplicates += c.dups
				r.OutOfOrder += c.outOfOrder
				r.Missing += int64(o.messages) - c.distinct
				if c.ended.Load() {
					r.Disconnected++
				}
				lat = append(lat, c.latency...)
			}
			c.mu.Unlock()
		}
		r.SlowDelivered = shared.slowGot.Load()
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
		if r.Slow > 0 {
			fmt.Fprintf(out, "%d slow clients: delivered %d, disconnected %d, gap events %d, stale at the end %d\n",
				r.Slow, r.SlowDelivered, r.SlowDisconnected, r.SlowGaps, r.SlowStale)
		}
		if r.RSSPeakKiB > 0 {
			fmt.Fprintf(out, "ssegate RSS at most %d KiB while events flowed\n", r.RSSPeakKiB)
		}
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

// churnAll runs churn, measuring ssegate's CPU and, with o.watch, the
// NATS messages on that subject.
func churnAll(ctx context.Context, o options, shared *counters, clients []*client, proc procStats, r *Report) error {
	var msgs, bytes atomic.Int64
	if o.watch != "" {
		nc, err := nats.Connect(o.natsURL, nats.Name("ssegate-bench"), nats.IgnoreDiscoveredServers())
		if err != nil {
			return fmt.Errorf("connect to NATS: %w", err)
		}
		defer nc.Close()
		if _, err := nc.Subscribe(o.watch, func(m *nats.Msg) {
			msgs.Add(1)
			bytes.Add(int64(len(m.Subject) + len(m.Data)))
		}); err != nil {
			return fmt.Errorf("watch %s: %w", o.watch, err)
		}
		if err := nc.Flush(); err != nil {
			return fmt.Errorf("watch %s: %w", o.watch, err)
		}
	}
	cpu0 := proc.cpu()
	r.Joined = churn(ctx, o, shared, clients, o.churn, o.churnFor)
	if o.pid != 0 {
		r.ChurnCPU = (proc.cpu() - cpu0).Seconds()
		r.CPUPerJoinUs = r.ChurnCPU * 1e6 / float64(max(r.Joined, 1))
	}
	r.WatchMessages, r.WatchBytes = msgs.Load(), bytes.Load()
	return nil
}

// revokeAll publishes o.revoke to the control subject and waits, within
// o.timeout, for the connected clients' streams to end; it reports how
// many did and how long after the publish.
func revokeAll(o options, clients []*client, r *Report) error {
	nc, err := nats.Connect(o.natsURL, nats.Name("ssegate-bench"), nats.IgnoreDiscoveredServers())
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	start := time.Now()
	if err := nc.Publish(o.control+".revoke", []byte(o.revoke)); err != nil {
		return fmt.Errorf("publish the revocation: %w", err)
	}
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		return fmt.Errorf("publish the revocation: %w", err)
	}
	var took []time.Duration
	deadline := start.Add(o.timeout)
	for {
		took = took[:0]
		for _, c := range clients {
			if c.err == nil && c.ended.Load() {
				took = append(took, time.Duration(c.endedAt.Load()-start.UnixNano()))
			}
		}
		if len(took) == r.Connected || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	slices.Sort(took)
	r.Revoked = len(took)
	if len(took) > 0 {
		ms := func(p float64) float64 {
			return float64(took[min(len(took)-1, int(p*float64(len(took))))].Microseconds()) / 1000
		}
		r.RevokeP50Ms, r.RevokeP99Ms, r.RevokeMaxMs = ms(0.5), ms(0.99), ms(1)
	}
	return nil
}

// caughtUp reports whether every connected client has caught up.
func caughtUp(clients []*client) bool {
	for _, c := range clients {
		if c.err == nil && !c.caughtUp() {
			return false
		}
	}
	return true
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
	keyed := make([]string, o.keys)
	for k := range keyed {
		keyed[k] = o.subject + "." + strconv.Itoa(k)
	}
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
		subject := o.subject
		if o.keys > 0 {
			subject = keyed[i%o.keys]
		}
		if err := nc.Publish(subject, buf); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	return nc.FlushTimeout(10 * time.Second)
}
