// Package testproc runs a server program for a test (PostgreSQL,
// redis-server): started, waited for until it answers, and stopped.
package testproc

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a server has to answer after it starts,
// and to exit after it is told to stop.
const startTimeout = 30 * time.Second

// Proc is a running server.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
}

// Start runs cmd, its output appended to the file logPath, and returns
// once ready reports nil; the test fails with the log if the program
// exits first or is not ready within 30 s.
func Start(t testing.TB, cmd *exec.Cmd, logPath string, ready func() error) *Proc {
	t.Helper()
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(startTimeout)
	for {
		err := ready()
		if err == nil {
			return p
		}
		select {
		case <-p.done:
			out, _ := os.ReadFile(logPath)
			t.Fatalf("%s exited at start:\n%s", cmd.Path, out)
		default:
		}
		if time.Now().After(deadline) {
			p.Stop(syscall.SIGKILL)
			t.Fatalf("%s not ready after %v: %v", cmd.Path, startTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop sends sig and waits for the program to exit, killing it if it
// has not within 30 s.
func (p *Proc) Stop(sig os.Signal) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(startTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
