package sources

import (
	"strconv"
	"testing"
	"time"
)

func TestDedup(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	d := newDedup(time.Minute, 3)
	if got := d.reserve("a", t0); got != dupNew {
		t.Fatalf("first delivery: %v", got)
	}
	if got := d.reserve("a", t0); got != dupInFlight {
		t.Errorf("same id while the first is being handed on: %v, want in flight", got)
	}
	d.confirm("a", t0)
	if got := d.reserve("a", t0.Add(59*time.Second)); got != dupSeen {
		t.Errorf("retry within the window: %v, want seen", got)
	}
	if got := d.reserve("a", t0.Add(61*time.Second)); got != dupNew {
		t.Errorf("after the window: %v, want new", got)
	}

	// A failed delivery is forgotten, so the sender's retry goes through.
	d.reserve("b", t0)
	d.cancel("b")
	if got := d.reserve("b", t0); got != dupNew {
		t.Errorf("retry of a failed delivery: %v, want new", got)
	}

	// The limit holds whatever the window: the oldest go first.
	d = newDedup(time.Hour, 3)
	for i := range 10 {
		id := strconv.Itoa(i)
		d.reserve(id, t0)
		d.confirm(id, t0)
	}
	if len(d.entries) > 3 {
		t.Errorf("%d ids remembered, limit 3", len(d.entries))
	}
	if got := d.reserve("9", t0); got != dupSeen {
		t.Errorf("newest id forgotten: %v", got)
	}

	// Failed deliveries behind a live one leave no trail.
	d = newDedup(time.Hour, 3)
	d.reserve("live", t0)
	for i := range 10000 {
		d.reserve(strconv.Itoa(i), t0)
		d.cancel(strconv.Itoa(i))
	}
	if n := len(d.order) - d.head; n > 6 {
		t.Errorf("%d references queued for 1 live id, limit 3", n)
	}

	// A zero window turns de-duplication off.
	d = newDedup(0, 3)
	d.reserve("c", t0)
	d.confirm("c", t0)
	if got := d.reserve("c", t0); got != dupNew {
		t.Errorf("zero window: %v, want new", got)
	}
}
