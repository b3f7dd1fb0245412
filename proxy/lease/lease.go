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
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"sync"
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
	js      func() jetstream.JetStream // of the NATS connection in use
	ttl     time.Duration
	refresh time.Duration // how often a holder rewrites its job's state
	holder  []byte        // this process, in the lease's value
	log     zerolog.Logger

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
	return &Leases{js: js, ttl: ttl, refresh: stateRefresh, holder: []byte(host + "/" + hex.EncodeToString(b[:])), log: log}
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
