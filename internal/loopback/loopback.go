// Package loopback starts what tests need on 127.0.0.1: a real nats-server
// and free ports. It is for tests only.
package loopback

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// startTimeout bounds how long a test waits for its nats-server.
const startTimeout = 10 * time.Second

// NATS runs a real nats-server until the test ends, at addr, or at a
// random 127.0.0.1 port when addr is "".
func NATS(t testing.TB, addr string) *server.Server {
	t.Helper()
	return run(t, addr, &server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
}

// JetStream runs a real nats-server with JetStream, storing in dir, until
// the test ends.
func JetStream(t testing.TB, dir string) *server.Server {
	t.Helper()
	return run(t, "", &server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true, JetStream: true, StoreDir: dir})
}

func run(t testing.TB, addr string, opts *server.Options) *server.Server {
	t.Helper()
	if addr != "" {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		if opts.Port, err = strconv.Atoi(port); err != nil {
			t.Fatal(err)
		}
		opts.Host = host
	}
	ns, err := startServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// startServer starts a nats-server and waits until it is ready.
func startServer(opts *server.Options) (*server.Server, error) {
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(startTimeout) {
		ns.Shutdown()
		return nil, fmt.Errorf("nats-server %s not ready (port %d, cluster port %d taken?)", opts.ServerName, opts.Port, opts.Cluster.Port)
	}
	return ns, nil
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago, for a server the test starts itself. The port is below the
// kernel's range for outgoing connections, so that another test's
// connection cannot take it before the server binds it, and is handed out
// once per test binary.
func FreeAddr(t testing.TB) string {
	t.Helper()
	low := ephemeralLow()
	for range 200 {
		port := freeFloor + rand.IntN(low-freeFloor)
		if _, taken := handedOut.LoadOrStore(port, true); taken {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	// Below the range every port tried was taken: the kernel's choice.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// freeFloor is the lowest port FreeAddr picks: above well-known and
// registered services' usual ports.
const freeFloor = 20000

// handedOut are the ports FreeAddr has returned in this process.
var handedOut sync.Map

// ephemeralLow is the first port of the kernel's range for outgoing
// connections (Linux's default when it cannot be read).
func ephemeralLow() int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	return max(low, freeFloor+1000)
}

// Cluster runs n nats-servers with JetStream, routed to each other as one
// cluster on 127.0.0.1, until the test ends; it returns once JetStream has
// a leader that can place streams on every node.
func Cluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	// The route ports are picked before the servers bind them, and a
	// loopback connection of another test may take one meanwhile: pick
	// them again then.
	var servers []*server.Server
	var err error
	for range 3 {
		if servers, err = startCluster(t, n); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		t.Cleanup(s.Shutdown)
	}
	deadline := time.Now().Add(startTimeout)
	for _, s := range servers {
		for !s.JetStreamIsLeader() && !s.JetStreamIsCurrent() || s.NumRoutes() < n-1 {
			if time.Now().After(deadline) {
				t.Fatal("cluster not formed")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// A leader places a replicated stream only on peers it has heard
	// statistics from; before that, creating one fails with "no suitable
	// peers for placement".
	for !slices.ContainsFunc(servers, func(s *server.Server) bool { return len(s.JetStreamClusterPeers()) == n }) {
		if time.Now().After(deadline) {
			t.Fatal("JetStream leader does not see every peer")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return servers
}

// startCluster starts n routed servers, or none.
func startCluster(t testing.TB, n int) ([]*server.Server, error) {
	routes := make([]*url.URL, n)
	ports := make([]int, n)
	for i := range n {
		addr := FreeAddr(t)
		_, port, _ := net.SplitHostPort(addr)
		ports[i], _ = strconv.Atoi(port)
		routes[i] = &url.URL{Scheme: "nats", Host: addr}
	}
	var servers []*server.Server
	for i := range n {
		s, err := startServer(&server.Options{
			ServerName: "n" + strconv.Itoa(i),
			Host:       "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
			JetStream: true, StoreDir: t.TempDir(),
			Cluster: server.ClusterOpts{Name: "ssegate-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:  routes,
		})
		if err != nil {
			for _, s := range servers {
				s.Shutdown()
			}
			return nil, err
		}
		servers = append(servers, s)
	}
	return servers, nil
}
