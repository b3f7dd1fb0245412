// Package pgtest runs a throwaway PostgreSQL server on 127.0.0.1 for the
// tests of the sources that read PostgreSQL: a cluster made with initdb
// in a temporary directory, started and stopped by the test, trusted on
// loopback only.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/internal/needs"
	"github.com/ssegate/ssegate/internal/testproc"
)

// Server is a PostgreSQL server run by a test.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	cred *syscall.Credential // the user the server runs as, when the test runs as root
	proc *testproc.Proc
	dbs  atomic.Int64
}

// Start makes a cluster and starts a server on it until the test ends; the
// test is skipped when PostgreSQL is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := binDir()
	if bin == "" {
		needs.Skip(t, "PostgreSQL (initdb and postgres)", "apt-get install postgresql")
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	_, port, _ := net.SplitHostPort(loopback.FreeAddr(t))
	s.port, _ = strconv.Atoi(port)
	if os.Geteuid() == 0 {
		// The server refuses to run as root: it runs as the postgres user
		// the package made, owning its directory.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, and no postgres user to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		// t.TempDir's parents are root's, mode 0700.
		for d := s.dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chown(s.dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(s.dir, "data")
	initdb := s.command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// binDir finds the directory of initdb and postgres: Debian keeps them
// out of PATH, under /usr/lib/postgresql/VERSION/bin.
func binDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = s.dir
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd
}

// Start starts the server (again, after Stop) and returns once it takes
// connections.
func (s *Server) Start() {
	s.t.Helper()
	cmd := s.command(filepath.Join(s.bin, "postgres"), "-D", filepath.Join(s.dir, "data"),
		"-p", strconv.Itoa(s.port), "-k", s.dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200")
	s.proc = testproc.Start(s.t, cmd, filepath.Join(s.dir, "server.log"), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			conn.Close(ctx)
		}
		return err
	})
}

// Stop stops the server at once (a fast shutdown: clients are cut off),
// and waits for it to exit.
func (s *Server) Stop() {
	if s.proc != nil {
		s.proc.Stop(syscall.SIGINT)
		s.proc = nil
	}
}

// DSN is the URL of database db on the server.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// NewDatabase makes an empty database of the test's own and returns its
// URL; setup, if any, is run in it.
func (s *Server) NewDatabase(t testing.TB, setup ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := "t" + strconv.FormatInt(s.dbs.Add(1), 10)
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	dsn := s.DSN(name)
	if len(setup) > 0 {
		db, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close(ctx)
		for _, q := range setup {
			if _, err := db.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	return dsn
}
