// Package lease lets one replica at a time do a job, such as polling an
// upstream, across every ssegate on a NATS cluster. Leases live in a
// JetStream key-value bucket; every change is a compare-and-set on the
// key's revision, so two replicas never both believe they hold one.
//
// Liveness does not depend on clocks agreeing: a holder renews its lease
// every TTL/4, and a replica waiting for it takes over when it has seen no
// renewal for a whole TTL by its own clock. A holder that cannot renew for
// half the TTL stops its job first, so the two do not overlap. A holder
// that stops cleanly deletes its lease and a waiting replica takes it at
// once.
//
// A job can leave state for the next holder (what it has emitted so far),
// stored next to its lease.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

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
// jobs of streams nobody watches any more.
const bucketMaxAge = 24 * time.Hour

// Job is what a lease guards. It runs until ctx ends, which happens when
// the lease is lost or released. saved is the state the previous holder
// left (nil when none); save replaces it.
type Job = func(ctx context.Context, saved []byte, save func(context.Context, []byte) error)

// Leases takes and renews leases for this process.
type Leases struct {
	js     jetstream.JetStream
	ttl    time.Duration
	holder []byte // this process, in the lease's value
	log    zerolog.Logger

	mu       sync.Mutex
	kv       jetstream.KeyValue
	disabled bool // the NATS has no JetStream: every job runs here
	ready    chan struct{}
}

// New returns leases kept in js's bucket, with the given TTL (DefaultTTL
// when 0). The bucket is created on first use.
func New(js jetstream.JetStream, ttl time.Duration, log zerolog.Logger) *Leases {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	host, _ := os.Hostname()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &Leases{js: js, ttl: ttl, holder: []byte(host + "/" + hex.EncodeToString(b[:])), log: log}
}

// TTL is how long after its holder's last renewal a lease is taken over.
func (l *Leases) TTL() time.Duration { return l.ttl }

// Hold runs job whenever this process holds the lease named key (letters,
// digits, '-', '_', '=' and '.'), until ctx ends. When the lease is lost,
// job's context ends and Hold waits for it to return before it tries to
// take the lease again.
func (l *Leases) Hold(ctx context.Context, key string, job Job) {
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
		h := &held{l: l, kv: kv, key: key, log: log}
		rev, err := h.acquire(ctx)
		if err != nil {
			return
		}
		log.Debug().Msg("lease taken")
		h.run(ctx, rev, job)
	}
}

// bucket opens the lease bucket, retrying while NATS is unavailable. It
// returns nil, nil when the NATS has no JetStream.
func (l *Leases) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	l.mu.Lock()
	if l.kv != nil || l.disabled {
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
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		octx, cancel := context.WithTimeout(ctx, opTimeout)
		kv, err := l.js.CreateOrUpdateKeyValue(octx, jetstream.KeyValueConfig{
			Bucket:      Bucket,
			Description: "ssegate: which replica runs each poll, and where it got to",
			History:     1,
			TTL:         bucketMaxAge,
		})
		cancel()
		switch {
		case err == nil:
			l.mu.Lock()
			l.kv = kv
			l.mu.Unlock()
			return kv, nil
		case errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
			l.log.Info().Msg("NATS has no JetStream: every replica runs its own polls")
			l.mu.Lock()
			l.disabled = true
			l.mu.Unlock()
			return nil, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		l.log.Debug().Err(err).Msg("lease bucket not available yet")
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// held is one lease, from taking it to losing or releasing it.
type held struct {
	l   *Leases
	kv  jetstream.KeyValue
	key string
	log zerolog.Logger
}

// acquire waits until this process holds the lease and returns its
// revision.
func (h *held) acquire(ctx context.Context) (uint64, error) {
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, h.l.ttl) {
		rev, err := h.create(ctx)
		if err == nil {
			return rev, nil
		}
		if errors.Is(err, jetstream.ErrKeyExists) {
			rev, err = h.await(ctx)
			if err == nil {
				if rev != 0 {
					return rev, nil
				}
				// Released or changed hands: try again now.
				delay = 100 * time.Millisecond
				continue
			}
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if err != nil {
			h.log.Debug().Err(err).Msg("lease not taken yet")
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-t.C:
		}
	}
}

func (h *held) create(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	return h.kv.Create(ctx, h.key, h.l.holder)
}

// await watches a lease someone else holds. It returns the lease's new
// revision once it took it over from a holder silent for a TTL, or 0 when
// the lease was released or changed hands and should be tried again.
func (h *held) await(ctx context.Context) (uint64, error) {
	w, err := h.kv.Watch(ctx, h.key)
	if err != nil {
		return 0, fmt.Errorf("watch: %w", err)
	}
	defer func() { _ = w.Stop() }()
	var seen uint64
	silent := time.NewTimer(h.l.ttl)
	defer silent.Stop()
	for {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return 0, errors.New("watch ended")
			}
			if e == nil {
				if seen == 0 {
					return 0, nil // gone between create and watch
				}
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				return 0, nil
			}
			seen = e.Revision()
			silent.Reset(h.l.ttl)
		case <-silent.C:
			if seen == 0 {
				return 0, nil
			}
			octx, cancel := context.WithTimeout(ctx, opTimeout)
			rev, err := h.kv.Update(octx, h.key, h.l.holder, seen)
			cancel()
			if err == nil {
				h.log.Info().Dur("silent", h.l.ttl).Msg("lease taken over from a silent holder")
				return rev, nil
			}
			if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				return 0, nil
			}
			// NATS trouble: the holder is likely cut off too; look again.
			h.log.Debug().Err(err).Msg("lease takeover failed")
			silent.Reset(h.l.ttl / 4)
		}
	}
}

// run runs job while the lease at revision rev is renewed, then stops it.
// The lease is deleted when ctx ended or the job returned by itself, and
// left to expire when this process could not renew it.
func (h *held) run(ctx context.Context, rev uint64, job Job) {
	saved := h.loadState(ctx)
	jctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		job(jctx, saved, h.saveState)
	}()
	renew := time.NewTicker(h.l.ttl / 4)
	defer renew.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-ctx.Done():
			stop()
			<-done
			h.release(rev)
			return
		case <-done:
			stop()
			h.release(rev)
			// A job that ends by itself is not run again until ctx ends.
			<-ctx.Done()
			return
		case <-renew.C:
			start := time.Now()
			// Not ctx: a renewal cut short may still be applied, and the
			// release that follows needs the revision it made.
			octx, cancel := context.WithTimeout(context.Background(), h.l.ttl/4)
			r, err := h.kv.Update(octx, h.key, h.l.holder, rev)
			cancel()
			switch {
			case err == nil:
				rev, lastOK = r, start
				continue
			case errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound):
				h.log.Warn().Msg("lease lost to another replica; stopping here")
			case time.Since(lastOK) > h.l.ttl/2:
				h.log.Warn().Err(err).Msg("lease not renewed in time; stopping here until it is taken again")
			default:
				h.log.Debug().Err(err).Msg("lease renewal failed; retrying")
				continue
			}
			stop()
			<-done
			return
		}
	}
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

// loadState reads what the previous holder saved; nil when nothing was
// saved or it cannot be read now (the job then starts afresh).
func (h *held) loadState(ctx context.Context) []byte {
	gctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	e, err := h.kv.Get(gctx, h.stateKey())
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyNotFound) && ctx.Err() == nil {
			h.log.Warn().Err(err).Msg("state of the previous lease holder not read; starting afresh")
		}
		return nil
	}
	return e.Value()
}

func (h *held) saveState(ctx context.Context, b []byte) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if _, err := h.kv.Put(ctx, h.stateKey(), b); err != nil {
		return fmt.Errorf("save state of lease %s: %w", h.key, err)
	}
	return nil
}
