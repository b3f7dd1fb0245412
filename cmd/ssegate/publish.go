package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// runPublish is `ssegate publish`: one message to NATS, with headers and
// a payload given as an argument, read from a file or from stdin, so that
// scripts and conformance checks can send exact bytes, event names and
// ids. It prints what it published.
func runPublish(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("publish", stdout)
	server := fs.String("server", nats.DefaultURL, "NATS server")
	file := fs.String("file", "", "read the payload from this file instead of DATA")
	var headers []string
	headerFlag(fs, &headers, "a message header, `Name: value` (repeatable), e.g. 'Ssegate-Event: quote'")
	if code, done := parseFlags(fs, args, stderr); done {
		return code
	}
	var data []byte
	var err error
	switch {
	case fs.NArg() == 1 && *file != "":
		data, err = os.ReadFile(*file)
	case fs.NArg() == 2 && *file == "" && fs.Arg(1) == "-":
		data, err = io.ReadAll(os.Stdin)
	case fs.NArg() == 2 && *file == "":
		data = []byte(fs.Arg(1))
	default:
		fmt.Fprintf(stderr, "ssegate publish: give SUBJECT and one payload: DATA, -file PATH or - (stdin)\nsee: ssegate publish -h\n")
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "ssegate publish:", err)
		return 1
	}
	m := nats.NewMsg(fs.Arg(0))
	m.Data = data
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		m.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if err := publish(*server, m); err != nil {
		fmt.Fprintln(stderr, "ssegate publish:", err)
		return 1
	}
	fmt.Fprintf(stdout, "published %d bytes to %s", len(data), m.Subject)
	if len(headers) > 0 {
		fmt.Fprintf(stdout, " with %s", strings.Join(headers, ", "))
	}
	fmt.Fprintln(stdout)
	return 0
}

func publish(url string, m *nats.Msg) error {
	nc, err := nats.Connect(url, nats.Name("ssegate publish"), nats.Timeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", url, err)
	}
	defer nc.Close()
	if err := nc.PublishMsg(m); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}
