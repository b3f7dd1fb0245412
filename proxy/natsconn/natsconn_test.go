package natsconn

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/ssegate/ssegate/internal/logbuf"
	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/proxy/config"
)

const wait = 10 * time.Second

func closeConns(t *testing.T, b *Conns) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// roundTrip checks that a message published on pub reaches sub.
func roundTrip(t *testing.T, sub, pub *nats.Conn) {
	t.Helper()
	s, err := sub.SubscribeSync("probe")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish("probe", []byte("ping")); err != nil {
		t.Fatal(err)
	}
	m, err := s.NextMsg(wait)
	if err != nil || string(m.Data) != "ping" {
		t.Fatalf("round trip: %v %v", m, err)
	}
}

func TestEmbeddedInProcessOnly(t *testing.T) {
	t.Parallel()
	var logs logbuf.Buffer
	b, err := Connect(config.NATS{}, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	// The log says where NATS is, not nats.go's default URL.
	if !strings.Contains(logs.String(), `"server":"in-process only"`) {
		t.Errorf("start-up log: %s", logs.String())
	}
	if b.embedded == nil || b.embedded.Addr() != nil {
		t.Fatalf("want an embedded server without a TCP listener, got %v", b.embedded)
	}
	roundTrip(t, b.Conn(), b.Conn())
	closeConns(t, b)
	if !b.Conn().IsClosed() || b.embedded.Running() {
		t.Error("Close left the connection or the server running")
	}
}

func TestEmbeddedListensForOtherProcesses(t *testing.T) {
	t.Parallel()
	addr := loopback.FreeAddr(t)
	b, err := Connect(config.NATS{Embedded: config.Embedded{Listen: addr}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer closeConns(t, b)
	ext, err := nats.Connect("nats://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close()
	roundTrip(t, b.Conn(), ext)
}

func TestEmbeddedJetStreamWithStoreDir(t *testing.T) {
	t.Parallel()
	b, err := Connect(config.NATS{Embedded: config.Embedded{StoreDir: t.TempDir()}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer closeConns(t, b)
	js, err := b.Conn().JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AccountInfo(); err != nil {
		t.Fatalf("JetStream not enabled: %v", err)
	}
}

func TestExternalServer(t *testing.T) {
	t.Parallel()
	ns := loopback.NATS(t, "")
	b, err := Connect(config.NATS{URL: ns.ClientURL(), Name: "edge-test"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer closeConns(t, b)
	if b.embedded != nil {
		t.Fatal("started an embedded server although a URL was given")
	}
	if !b.Conn().IsConnected() || b.Conn().Opts.Name != "edge-test" {
		t.Fatalf("connected %v as %q", b.Conn().IsConnected(), b.Conn().Opts.Name)
	}
	roundTrip(t, b.Conn(), b.Conn())
}

func TestEmbeddedListenInUseFails(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Connect(config.NATS{Embedded: config.Embedded{Listen: ln.Addr().String()}}, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Connect on an address in use: err = %v", err)
	}
}
