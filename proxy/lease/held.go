package lease

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// held is one lease, from taking it to losing or releasing it.
type held struct {
	l      *Leases
	kv     jetstream.KeyValue
	kvFrom jetstream.JetStream // what kv was opened with
	key    string
	log    zerolog.Logger

	waiting func() // called when another process holds the lease

	// lost refuses saves. It is not under mu: a save waiting on a stalled
	// NATS holds mu, and the fence must not wait for it.
	lost     atomic.Bool
	mu       sync.Mutex // serializes saves
	stateRev uint64     // revision of the state key as last read or written
	state    []byte     // last state saved
}

// acquire waits until this process holds the lease, and returns its
// revision and when the request that took it was sent.
func (h *held) acquire(ctx context.Context) (uint64, time.Time, error) {
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, h.l.ttl) {
		sent := time.Now()
		rev, err := h.create(ctx)
		if err == nil {
			return rev, sent, nil
		}
		if errors.Is(err, jetstream.ErrKeyExists) {
			if h.waiting != nil {
				h.waiting()
			}
			rev, sent, err = h.await(ctx)
			if err == nil {
				if rev != 0 {
					return rev, sent, nil
				}
				// Released or changed hands: try again now.
				delay = 100 * time.Millisecond
				continue
			}
		}
		if ctx.Err() != nil {
			return 0, time.Time{}, ctx.Err()
		}
		if h.stale() {
			return 0, time.Time{}, errStale
		}
		h.log.Debug().Err(err).Msg("lease not taken yet")
		sleep(ctx, delay)
	}
}

// stale reports whether the lease's bucket is on a connection that has
// been replaced.
func (h *held) stale() bool { return h.kvFrom != h.l.js() }

func (h *held) create(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	return h.kv.Create(ctx, h.key, h.l.holder)
}

// await watches a lease someone else holds. It returns the lease's new
// revision, and when the request was sent, once it took it over from a
// holder silent for a TTL, or 0 when the lease was released or changed
// hands and should be tried again.
func (h *held) await(ctx context.Context) (uint64, time.Time, error) {
	w, err := h.kv.Watch(ctx, h.key)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("watch: %w", err)
	}
	defer func() { _ = w.Stop() }()
	var seen uint64
	silent := time.NewTimer(h.l.ttl)
	defer silent.Stop()
	for {
		select {
		case <-ctx.Done():
			return 0, time.Time{}, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return 0, time.Time{}, errors.New("watch ended")
			}
			if e == nil {
				if seen == 0 {
					return 0, time.Time{}, nil // gone between create and watch
				}
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				return 0, time.Time{}, nil
			}
			if bytes.Equal(e.Value(), h.l.holder) {
				// Still this process's (it stopped its job when it could
				// not renew, or a create's answer was lost): take it back
				// now rather than after a TTL of its own silence.
				if r, sent, ok := h.renewAt(ctx, e.Revision()); ok {
					return r, sent, nil
				}
			}
			seen = e.Revision()
			silent.Reset(h.l.ttl)
		case <-silent.C:
			if seen == 0 {
				return 0, time.Time{}, nil
			}
			sent := time.Now()
			octx, cancel := context.WithTimeout(ctx, opTimeout)
			rev, err := h.kv.Update(octx, h.key, h.l.holder, seen)
			cancel()
			if err == nil {
				h.log.Info().Dur("silent", h.l.ttl).Msg("lease taken over from a silent holder")
				return rev, sent, nil
			}
			if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				return 0, time.Time{}, nil
			}
			if h.stale() {
				return 0, time.Time{}, errStale
			}
			// NATS trouble: the holder is likely cut off too; look again.
			h.log.Debug().Err(err).Msg("lease takeover failed")
			silent.Reset(h.l.ttl / 4)
		}
	}
}

// run runs job while the lease at revision rev, taken by a request sent
// at sent, is renewed, then stops it. The lease is deleted when ctx ended
// or the job returned by itself, and left to expire when this process
// could not renew it. It returns false when the job could not start.
func (h *held) run(ctx context.Context, rev uint64, sent time.Time, job Job) bool {
	// The other replicas count a TTL from when they saw the last write
	// of this lease, at or after its request was sent: stopping half a
	// TTL after sending leaves the other half as margin.
	deadline := sent.Add(h.l.ttl / 2)
	fence := time.NewTimer(time.Until(deadline))
	defer fence.Stop()
	saved, err := h.loadState(ctx, deadline)
	if err != nil {
		if ctx.Err() == nil {
			h.log.Warn().Err(err).Msg("state of the previous lease holder not read; leaving the lease to another replica")
		}
		h.release(rev)
		return false
	}
	jctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		job(jctx, saved, h.saveState)
	}()
	// fenced stops the job of a lease that may no longer be this
	// process's, refusing its saves first.
	// A save in flight is cancelled with the job's context.
	fenced := func() {
		h.lost.Store(true)
		stop()
		<-done
	}
	renew := time.NewTicker(h.l.ttl / 4)
	defer renew.Stop()
	refresh := time.NewTicker(h.l.refresh)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			stop()
			<-done
			h.release(rev)
			return true
		case <-done:
			stop()
			h.release(rev)
			// A job that ends by itself is not run again until ctx ends.
			<-ctx.Done()
			return true
		case <-fence.C:
			h.log.Warn().Msg("lease not renewed in time; stopping here until it is taken again")
			fenced()
			return true
		case <-renew.C:
			left := time.Until(deadline)
			if left <= 0 {
				continue // the fence goes off
			}
			start := time.Now()
			// Not ctx: a renewal cut short may still be applied, and the
			// release that follows needs the revision it made.
			octx, cancel := context.WithTimeout(context.Background(), min(h.l.ttl/4, left))
			r, err := h.kv.Update(octx, h.key, h.l.holder, rev)
			cancel()
			switch {
			case err == nil:
				rev, deadline = r, start.Add(h.l.ttl/2)
				fence.Reset(time.Until(deadline))
			case errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound):
				// A renewal that failed but was applied leaves the lease
				// ours at a revision unknown here: take that one again.
				if r, sent, ok := h.reclaim(ctx); ok {
					rev, deadline = r, sent.Add(h.l.ttl/2)
					fence.Reset(time.Until(deadline))
					continue
				}
				h.log.Warn().Msg("lease lost to another replica; stopping here")
				fenced()
				return true
			default:
				h.log.Debug().Err(err).Msg("lease renewal failed; retrying")
			}
		case <-refresh.C:
			h.refreshState(ctx)
		}
	}
}

// reclaim takes the lease again at its current revision if it still
// names this process.
func (h *held) reclaim(ctx context.Context) (uint64, time.Time, bool) {
	octx, cancel := context.WithTimeout(ctx, h.l.ttl/4)
	e, err := h.kv.Get(octx, h.key)
	cancel()
	if err != nil || !bytes.Equal(e.Value(), h.l.holder) {
		return 0, time.Time{}, false
	}
	return h.renewAt(ctx, e.Revision())
}

// renewAt writes the lease at revision rev, returning its new revision
// and when the write was sent.
func (h *held) renewAt(ctx context.Context, rev uint64) (uint64, time.Time, bool) {
	sent := time.Now()
	octx, cancel := context.WithTimeout(ctx, h.l.ttl/4)
	defer cancel()
	r, err := h.kv.Update(octx, h.key, h.l.holder, rev)
	if err != nil {
		return 0, time.Time{}, false
	}
	h.log.Debug().Msg("lease taken back")
	return r, sent, true
}

// release deletes the lease so a waiting replica takes it at once.
func (h *held) release(rev uint64) {
	// Short: a NATS outage must not hold up a shutdown, and the lease
	// expires anyway.
	ctx, cancel := context.WithTimeout(context.Background(), min(opTimeout, h.l.ttl/4))
	defer cancel()
	if err := h.kv.Delete(ctx, h.key, jetstream.LastRevision(rev)); err != nil {
		h.log.Debug().Err(err).Msg("lease not released; it expires by itself")
		return
	}
	h.log.Debug().Msg("lease released")
}
