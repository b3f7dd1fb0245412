// Package redistest runs a throwaway redis-server on 127.0.0.1 for the
// tests of the redis source, its data in an append-only file in a
// temporary directory, so that it survives a restart.
package redistest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/internal/needs"
)

// Server is a redis-server run by a test.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	addr string
	proc *exec.Cmd
	done chan struct{}
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
	s.proc = exec.Command(s.bin, "--port", port, "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "no",
		"--logfile", filepath.Join(s.dir, "server.log"), "--daemonize", "no")
	if err := s.proc.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(s.proc, s.done)
	c := redis.NewClient(&redis.Options{Addr: s.addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		select {
		case <-s.done:
			out, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			s.t.Fatalf("redis-server exited at start:\n%s", out)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server not ready after 30 s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the server (it writes its append-only file first) and waits
// for it to exit.
func (s *Server) Stop() {
	if s.proc == nil {
		return
	}
	_ = s.proc.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.proc.Process.Kill()
		<-s.done
	}
	s.proc = nil
}
