// Command rawwriter is the yardstick for ssegate's cost per delivered
// event: about the least a Go server can do to fan events out to SSE
// clients. It embeds a NATS server, as ssegate does by default, accepts
// connections, answers each request with a fixed event-stream head, and
// writes every NATS message, encoded once as a frame, to every connection
// from the subscription's goroutine. No history, ids, keepalives,
// per-client queues or goroutines: what is left is the system calls.
//
//	go run ./bench/rawwriter -listen 127.0.0.1:18081 -nats 127.0.0.1:14223
//	ssegate-bench -url http://127.0.0.1:18081/ -nats nats://127.0.0.1:14223 -pid PID ...
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

const head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"

func main() {
	listen := flag.String("listen", "127.0.0.1:18081", "address for the SSE clients")
	natsAddr := flag.String("nats", "127.0.0.1:14223", "address of the embedded NATS server")
	subject := flag.String("subject", "events", "the subject whose messages go to every client")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *natsAddr, *subject, nil); err != nil {
		fmt.Fprintln(os.Stderr, "rawwriter:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends; ready, if not nil, gets the SSE address once
// it serves.
func run(ctx context.Context, listen, natsAddr, subject string, ready chan<- string) error {
	host, port, err := net.SplitHostPort(natsAddr)
	if err != nil {
		return err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return err
	}
	ns, err := server.NewServer(&server.Options{Host: host, Port: p, NoSigs: true, NoLog: true})
	if err != nil {
		return err
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("NATS server not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		return err
	}
	defer nc.Close()

	var mu sync.Mutex
	var conns []net.Conn
	frame := make([]byte, 0, 1024)
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
		frame = append(append(append(frame[:0], "data: "...), m.Data...), "\n\n"...)
		mu.Lock()
		defer mu.Unlock()
		live := conns[:0]
		for _, c := range conns {
			_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(frame); err != nil {
				c.Close()
				continue
			}
			live = append(live, c)
		}
		clear(conns[len(live):])
		conns = live
	}); err != nil {
		return err
	}
	if err := nc.Flush(); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	if ready != nil {
		ready <- ln.Addr().String()
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				mu.Lock()
				for _, c := range conns {
					c.Close()
				}
				mu.Unlock()
				return nil
			}
			return err
		}
		go func() {
			// The request head is read and ignored: every path streams.
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
				c.Close()
				return
			}
			if _, err := c.Write([]byte(head)); err != nil {
				c.Close()
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}()
	}
}
