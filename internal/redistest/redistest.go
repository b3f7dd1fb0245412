// Package redistest runs a throwaway redis-server on 127.0.0.1 for the
// tests of the redis source, its data in an append-only file in a
// temporary directory, so that it survives a restart.
package redistest

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/internal/needs"
	"github.com/ssegate/ssegate/internal/testproc"
)

// Server is a redis-server run by a test.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	addr string
	proc *testproc.Proc
}

// Start starts a server until the test ends; the test is skipped when
// redis-server is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		needs.Skip(t, "redis-server", "apt-get install redis-server")
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir(), addr: loopback.FreeAddr(t)}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// URL is the server's address as a redis:// URL.
func (s *Server) URL() string { return "redis://" + s.addr + "/0" }

// Client is a client of the server, closed when the test ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// Start starts the server (again, after Stop) and returns once it
// answers.
func (s *Server) Start() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.addr)
	cmd := exec.Command(s.bin, "--port", port, "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "no", "--daemonize", "no")
	c := redis.NewClient(&redis.Options{Addr: s.addr, MaxRetries: -1})
	defer c.Close()
	s.proc = testproc.Start(s.t, cmd, filepath.Join(s.dir, "server.log"), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Ping(ctx).Err()
	})
}

// Stop stops the server (it writes its append-only file first) and waits
// for it to exit.
func (s *Server) Stop() {
	if s.proc != nil {
		s.proc.Stop(syscall.SIGTERM)
		s.proc = nil
	}
}
