// Package needs skips tests that need something the machine lacks, and
// says so where the person who ran the tests will see it.
//
// go test prints a passing package's output only with -v, so a skip
// alone would go unnoticed: a test that cannot run here would look like
// one that passed. Skip also writes one line to the terminal (/dev/tty),
// which go test does not capture. Without a terminal (CI), nothing more
// is written; CI installs what the tests need and checks that it did.
package needs

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

var told sync.Map // what has been said on the terminal, once per test binary

// Skip skips t because it needs what, which the command install provides.
func Skip(t testing.TB, what, install string) {
	t.Helper()
	msg := fmt.Sprintf("needs %s: %s", what, install)
	if _, said := told.LoadOrStore(msg, true); !said {
		if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
			fmt.Fprintf(tty, "SKIP %s and others in its package: %s\n", t.Name(), msg)
			tty.Close()
		}
	}
	t.Skip(msg)
}
