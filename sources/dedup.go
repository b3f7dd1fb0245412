package sources

import (
	"sync"
	"time"
)

// dupState is what a dedup knows of a delivery id.
type dupState int

const (
	dupNew      dupState = iota // never seen: reserved for the caller now
	dupSeen                     // accepted within the window
	dupInFlight                 // being accepted by another request
)

// dedup remembers the delivery ids accepted within a window, up to a
// limit, so a sender's retry of an accepted delivery produces no second
// event. It is per process: replicas on JetStream de-duplicate through
// Nats-Msg-Id instead.
type dedup struct {
	window time.Duration
	limit  int

	mu      sync.Mutex
	entries map[string]dedupEntry
	order   []dedupRef // oldest first, from head
	head    int
	seq     uint64
}

type dedupEntry struct {
	at   time.Time
	done bool
	seq  uint64
}

type dedupRef struct {
	id  string
	seq uint64
}

func newDedup(window time.Duration, limit int) *dedup {
	return &dedup{window: window, limit: limit, entries: map[string]dedupEntry{}}
}

// reserve claims id for a delivery about to be handed on, unless it was
// accepted within the window or is being accepted right now.
func (d *dedup) reserve(id string, now time.Time) dupState {
	if d.window <= 0 {
		return dupNew
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire(now)
	if e, ok := d.entries[id]; ok {
		if !e.done {
			return dupInFlight
		}
		if now.Sub(e.at) < d.window {
			return dupSeen
		}
	}
	d.seq++
	d.entries[id] = dedupEntry{at: now, seq: d.seq}
	d.order = append(d.order, dedupRef{id, d.seq})
	return dupNew
}

// confirm records that id was handed on at now.
func (d *dedup) confirm(id string, now time.Time) {
	if d.window <= 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.entries[id]; ok {
		e.at, e.done = now, true
		d.entries[id] = e
	}
}

// cancel forgets a reservation whose delivery failed, so a retry is
// accepted.
func (d *dedup) cancel(id string) {
	if d.window <= 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.entries, id)
}

// expire drops ids older than the window, and the oldest beyond the limit.
func (d *dedup) expire(now time.Time) {
	for d.head < len(d.order) {
		ref := d.order[d.head]
		e, ok := d.entries[ref.id]
		live := ok && e.seq == ref.seq
		if live && len(d.entries) < d.limit && (!e.done || now.Sub(e.at) < d.window) {
			break
		}
		if live {
			delete(d.entries, ref.id)
		}
		d.order[d.head] = dedupRef{}
		d.head++
	}
	// Released ids leave stale references, which can pile up behind a
	// live one: keep the queue within twice the limit.
	if len(d.order)-d.head > 2*d.limit {
		kept := d.order[:0]
		for _, ref := range d.order[d.head:] {
			if e, ok := d.entries[ref.id]; ok && e.seq == ref.seq {
				kept = append(kept, ref)
			}
		}
		clear(d.order[len(kept):])
		d.order, d.head = kept, 0
	}
	// Reuse the queue's space once most of it is behind the head.
	if d.head > len(d.order)/2 && d.head > 1024 {
		d.order = append(d.order[:0], d.order[d.head:]...)
		d.head = 0
	}
}
