// Package lease lets one replica at a time do a job, such as polling an
// upstream, across every ssegate on a NATS cluster. Leases live in a
// JetStream key-value bucket; every change is a compare-and-set on the
// key's revision, so two replicas never both believe they hold one.
//
// Liveness does not depend on clocks agreeing: a holder renews its lease
// every TTL/4, and a replica waiting for it takes over when it has seen no
// renewal for a whole TTL by its own clock. A holder stops its job once
// half a TTL has passed since it sent its last successful renewal (or the
// request that took the lease), so the two do not overlap. A holder that
// stops cleanly deletes its lease and a waiting replica takes it at once.
//
// A job can leave state for the next holder (what it has emitted so far),
// stored next to its lease and written compare-and-set too, and never by a
// holder that has lost its lease.
package lease

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// DefaultTTL is how long a lease outlives its last renewal.
const DefaultTTL = 10 * time.Second

// Bucket is the key-value bucket that holds the leases and their jobs'
// state.
const Bucket = "ssegate_leases"

// opTimeout bounds one request to the bucket.
const opTimeout = 5 * time.Second

// bucketMaxAge forgets leases and state nobody has touched for a day:
// jobs of streams nobody watches any more. A holder rewrites its state
// every stateRefresh so that it is not forgotten while the job runs.
const (
	bucketMaxAge = 24 * time.Hour
	stateRefresh = time.Hour
)

// bucketReplicas is how many NATS nodes keep the bucket: losing one must
// not stop every poll. A single server gets 1.
const bucketReplicas = 3

// tooFewNodes are the JetStream errors of a bucket with more replicas than
// servers: replicas not supported (a single server), insufficient
// resources, no suitable peers.
var tooFewNodes = []jetstream.ErrorCode{10074, 10023, 10005}

// notEnabledConfirm is how many answers in a row saying JetStream is off
// it takes to run jobs without leases: a cluster electing a leader can
// say so for a moment.
const notEnabledConfirm = 5

// errLost refuses a save from a holder that no longer holds its lease.
var errLost = errors.New("lease lost")

// errStale is a lease whose bucket was opened on a connection that has
// been replaced: nothing done through it can work any more.
var errStale = errors.New("lease bucket on a replaced NATS connection")

// Job is what a lease guards. It runs until ctx ends, which happens when
// the lease is lost or released. saved is the state the previous holder
// left (nil when none); save replaces it, and fails once the lease is
// lost.
type Job = func(ctx context.Context, saved []byte, save func(context.Context, []byte) error)

// Leases takes and renews leases for this process.
type Leases struct {
	js     func() jetstream.JetStream // of the NATS connection in use
	ttl    time.Duration
	holder []byte // this process, in the lease's value
	log    zerolog.Logger

	mu       sync.Mutex
	kv       jetstream.KeyValue
	kvFrom   jetstream.JetStream // what kv was opened with
	disabled bool                // the NATS has no JetStream: every job runs here
	ready    chan struct{}
}

// New returns leases kept in the bucket of the JetStream js gives, with
// the given TTL (DefaultTTL when 0). The bucket is created on first use,
// and opened again when js gives another JetStream (a new connection).
func New(js func() jetstream.JetStream, ttl time.Duration, log zerolog.Logger) *Leases {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	host, _ := os.Hostname()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &Leases{js: js, ttl: ttl, holder: []byte(host + "/" + hex.EncodeToString(b[:])), log: log}
}

// Hold runs job whenever this process holds the lease named key (letters,
// digits, '-', '_', '=' and '.'), until ctx ends. When the lease is lost,
// job's context ends and Hold waits for it to return before it tries to
// take the lease again. waiting, if not nil, is called each time the
// lease is found held by another process.
func (l *Leases) Hold(ctx context.Context, key string, job Job, waiting func()) {
	log := l.log.With().Str("lease", key).Logger()
	for ctx.Err() == nil {
		kv, err := l.bucket(ctx)
		if err != nil {
			return // ctx ended
		}
		if kv == nil {
			job(ctx, nil, func(context.Context, []byte) error { return nil })
			return
		}
		l.mu.Lock()
		from := l.kvFrom
		l.mu.Unlock()
		h := &held{l: l, kv: kv, kvFrom: from, key: key, log: log, waiting: waiting}
		rev, sent, err := h.acquire(ctx)
		if errors.Is(err, errStale) {
			continue // the bucket is opened again on the new connection
		}
		if err != nil {
			return
		}
		log.Debug().Msg("lease taken")
		if !h.run(ctx, rev, sent, job) {
			// Taken but not usable (its state could not be read): let
			// another replica try, and try again in a moment.
			sleep(ctx, l.ttl/4)
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// bucket opens the lease bucket, creating it when missing, and retries
// while NATS is unavailable. It returns nil, nil when the NATS has no
// JetStream.
func (l *Leases) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	l.mu.Lock()
	if l.disabled || (l.kv != nil && l.kvFrom == l.js()) {
		defer l.mu.Unlock()
		return l.kv, nil
	}
	wait := l.ready
	mine := wait == nil
	if mine {
		l.ready = make(chan struct{})
		wait = l.ready
	}
	l.mu.Unlock()
	if !mine {
		select {
		case <-wait:
			return l.bucket(ctx)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	// One opener at a time; the others wait for its outcome.
	defer func() {
		l.mu.Lock()
		close(l.ready)
		l.ready = nil
		l.mu.Unlock()
	}()
	notEnabled := 0
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		octx, cancel := context.WithTimeout(ctx, opTimeout)
		js := l.js()
		kv, err := l.openBucket(octx, js)
		cancel()
		switch {
		case err == nil:
			l.mu.Lock()
			l.kv, l.kvFrom = kv, js
			l.mu.Unlock()
			return kv, nil
		case errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) || errors.Is(err, nats.ErrNoResponders):
			if notEnabled++; notEnabled >= notEnabledConfirm {
				l.log.Info().Msg("NATS has no JetStream: every replica runs its own polls and upstream streams")
				l.mu.Lock()
				l.disabled = true
				l.mu.Unlock()
				return nil, nil
			}
		default:
			notEnabled = 0
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		l.log.Debug().Err(err).Msg("lease bucket not available yet")
		sleep(ctx, delay)
	}
}

// openBucket opens the bucket as it is (an operator may have tuned it), or
// creates it on bucketReplicas nodes, or on one where there is only one.
func (l *Leases) openBucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return kv, err
	}
	cfg := jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "ssegate: which replica runs each poll and upstream stream, and where it got to",
		History:     1,
		TTL:         bucketMaxAge,
		Replicas:    bucketReplicas,
	}
	kv, err = js.CreateKeyValue(ctx, cfg)
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && slices.Contains(tooFewNodes, apiErr.ErrorCode) {
		cfg.Replicas = 1
		kv, err = js.CreateKeyValue(ctx, cfg)
	}
	if errors.Is(err, jetstream.ErrBucketExists) {
		return js.KeyValue(ctx, Bucket) // another replica made it first
	}
	return kv, err
}

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
	refresh := time.NewTicker(stateRefresh)
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

func (h *held) stateKey() string { return h.key + ".state" }

// loadState reads what the previous holder saved (nil when nothing was),
// giving up at deadline.
func (h *held) loadState(ctx context.Context, deadline time.Time) ([]byte, error) {
	gctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	e, err := h.kv.Get(gctx, h.stateKey())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	h.stateRev = e.Revision()
	return e.Value(), nil
}

// saveState replaces the state, if this process still holds the lease
// and nobody else wrote the state since it last did.
func (h *held) saveState(ctx context.Context, b []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.putState(ctx, b); err != nil {
		return fmt.Errorf("save state of lease %s: %w", h.key, err)
	}
	return nil
}

// putState writes b as the state; called with mu held.
func (h *held) putState(ctx context.Context, b []byte) error {
	if h.lost.Load() {
		return errLost
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	rev, err := h.updateState(ctx, b)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		// Written meanwhile: by a save of this process that timed out
		// and landed later, or by a holder that lost the lease before
		// this one took it. The lease is this process's, so its state
		// wins.
		e, gerr := h.kv.Get(ctx, h.stateKey())
		switch {
		case gerr == nil:
			h.stateRev = e.Revision()
		case errors.Is(gerr, jetstream.ErrKeyNotFound):
			h.stateRev = 0
		default:
			return gerr
		}
		rev, err = h.updateState(ctx, b)
	}
	if err != nil {
		return err
	}
	h.stateRev, h.state = rev, b
	return nil
}

func (h *held) updateState(ctx context.Context, b []byte) (uint64, error) {
	if h.stateRev == 0 {
		return h.kv.Create(ctx, h.stateKey(), b)
	}
	return h.kv.Update(ctx, h.stateKey(), b, h.stateRev)
}

// refreshState writes the state again, so that the bucket does not forget
// it while a job that has nothing new to save runs on.
func (h *held) refreshState(ctx context.Context) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state == nil {
		return
	}
	if err := h.putState(ctx, h.state); err != nil && ctx.Err() == nil {
		h.log.Warn().Err(err).Msg("state not refreshed")
	}
}
