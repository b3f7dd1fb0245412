package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ssegate/ssegate/internal/logbuf"
	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/internal/needs"
	"github.com/ssegate/ssegate/internal/ssetest"
	"github.com/ssegate/ssegate/proxy"
	"github.com/ssegate/ssegate/proxy/config"
)

// wait bounds every wait in these tests; nothing here should take long.
const wait = 10 * time.Second

func connect(t testing.TB, ns *server.Server) *nats.Conn {
	t.Helper()
	return connectTo(t, ns.ClientURL())
}

// connectTo connects to the NATS at url until the test ends.
func connectTo(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// harness is an ssegate Server behind a real HTTP server on 127.0.0.1,
// with its own NATS connection and a separate one to publish with.
type harness struct {
	t   testing.TB
	ns  *server.Server
	pub *nats.Conn
	srv *proxy.Server
	ts  *httptest.Server
}

func start(t testing.TB, hcl string, opts ...proxy.Option) *harness {
	t.Helper()
	return startOn(t, loopback.NATS(t, ""), hcl, opts...)
}

func startOn(t testing.TB, ns *server.Server, hcl string, opts ...proxy.Option) *harness {
	t.Helper()
	cfg, err := config.Parse([]byte(hcl), "test.hcl")
	if err != nil {
		t.Fatal(err)
	}
	return startConfig(t, ns, cfg, opts...)
}

// startConfig serves cfg with its own NATS server (the config's nats block
// aside).
func startConfig(t testing.TB, ns *server.Server, cfg *config.Config, opts ...proxy.Option) *harness {
	t.Helper()
	// What the Server warns about is shown when the test fails (a test
	// that reads the log passes a logger of its own).
	var logs logbuf.Buffer
	t.Cleanup(func() {
		if t.Failed() && logs.String() != "" {
			t.Logf("the proxy's warnings:\n%s", logs.String())
		}
	})
	opts = append([]proxy.Option{proxy.WithNATS(connect(t, ns)), proxy.WithLogger(zerolog.New(&logs).Level(zerolog.WarnLevel))}, opts...)
	srv, err := proxy.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ns: ns, pub: connect(t, ns), srv: srv, ts: httptest.NewServer(srv)}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = srv.Shutdown(ctx)
		h.ts.Close()
	})
	return h
}

// startWithoutNATS serves hcl, prefixed with a nats block naming addr, a
// loopback address where no NATS server runs yet: the test starts one
// there when it wants NATS up.
func startWithoutNATS(t testing.TB, addr, hcl string) (*proxy.Server, *httptest.Server) {
	t.Helper()
	return serveConfig(t, fmt.Sprintf("nats { url = \"nats://%s\" }\n%s", addr, hcl))
}

// serveConfig serves hcl, with the NATS its nats block says, on a real
// HTTP server until the test ends.
func serveConfig(t testing.TB, hcl string) (*proxy.Server, *httptest.Server) {
	t.Helper()
	cfg, err := config.Parse([]byte(hcl), "test.hcl")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		// Shutdown ends the streams, which ts.Close waits for.
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		ts.Close()
	})
	return srv, ts
}

func (h *harness) publish(subject, body string) {
	h.t.Helper()
	h.publishMsg(&nats.Msg{Subject: subject, Data: []byte(body)})
}

func (h *harness) publishMsg(m *nats.Msg) {
	h.t.Helper()
	if err := h.pub.PublishMsg(m); err != nil {
		h.t.Fatal(err)
	}
	if err := h.pub.FlushTimeout(wait); err != nil {
		h.t.Fatal(err)
	}
}

// client is an SSE connection, read by a third-party parser.
type client = ssetest.Stream

// open connects to path and fails the test unless the answer is a 200
// event stream. header may be nil.
func (h *harness) open(path string, header http.Header) *client {
	h.t.Helper()
	return ssetest.Open(h.t, h.ts.Client(), h.ts.URL+path, header)
}

// rawOpen starts a stream on a bare TCP connection that reads nothing
// until the test reads resp.Body: a client that does not keep up.
func (h *harness) rawOpen(path string) (net.Conn, *http.Response) {
	h.t.Helper()
	conn, err := net.Dial("tcp", h.ts.Listener.Addr().String())
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = conn.Close() })
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path); err != nil {
		h.t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		h.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		h.t.Fatalf("GET %s: %v %v", path, resp, err)
	}
	return conn, resp
}

// expectRetryHint checks that raw is a come-back-later answer: a retry
// hint of base with up to half of it added or taken off, then a comment.
func expectRetryHint(t testing.TB, raw string, base time.Duration) {
	t.Helper()
	var ms int
	rest, ok := strings.CutPrefix(raw, "retry: ")
	if ok {
		_, err := fmt.Sscanf(rest, "%d\n", &ms)
		ok = err == nil
	}
	d := time.Duration(ms) * time.Millisecond
	if !ok || d < base/2 || d >= base*3/2 || !strings.Contains(raw, "\n: ") {
		t.Errorf("answer %q, want a retry hint of %v ± 50%% and a comment", raw, base)
	}
}

// jetstreamFor is a JetStream client on ns, closed at the end of the test.
func jetstreamFor(t testing.TB, ns *server.Server) (jetstream.JetStream, error) {
	return jetstream.New(connect(t, ns))
}

// ticksOnCluster is a route whose history is in JetStream, on three nodes.
const ticksOnCluster = `
route "/ticks" {
  history {
    store    = "jetstream"
    replicas = 3
  }
  source "nats" { subject = "ticks" }
}`

// onCluster starts a 3-node NATS cluster, an instance serving
// ticksOnCluster on its first node, and a JetStream client on its second.
func onCluster(t *testing.T) ([]*server.Server, *harness, jetstream.JetStream) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a 3-node NATS cluster")
	}
	nodes := loopback.Cluster(t, 3)
	a := startOn(t, nodes[0], ticksOnCluster)
	js, err := jetstreamFor(t, nodes[1])
	if err != nil {
		t.Fatal(err)
	}
	return nodes, a, js
}

// onlyStream is the one JetStream stream js sees: the history a route
// made.
func onlyStream(ctx context.Context, t testing.TB, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	names := js.StreamNames(ctx)
	var name string
	for n := range names.Name() {
		name = n
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

// npmInstall serialises the installs of the tests' Node packages.
var npmInstall sync.Mutex

// nodeWith returns node's path once the Node package pkg is installed in
// dir, installing dir's locked packages with npm first when they are
// missing (the test command then needs nothing done by hand). Without
// node, or when npm cannot install (no registry), the test is skipped and
// says what to run.
func nodeWith(t testing.TB, dir, pkg string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		needs.Skip(t, "Node.js", "apt-get install nodejs npm")
	}
	npmInstall.Lock()
	defer npmInstall.Unlock()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg)); err == nil {
		return node
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "npm", "ci", "--prefix", dir, "--no-audit", "--no-fund").CombinedOutput()
	if _, statErr := os.Stat(filepath.Join(dir, "node_modules", pkg)); err != nil || statErr != nil {
		t.Logf("npm ci --prefix %s: %v\n%s", dir, err, out)
		needs.Skip(t, "the Node package "+pkg, "npm ci --prefix "+filepath.Join("proxy", dir))
	}
	return node
}

// eventually polls cond until it holds, failing after wait.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// newTLSServer serves handler over TLS with HTTP/2 enabled.
func newTLSServer(t testing.TB, handler http.Handler) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(handler)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}
