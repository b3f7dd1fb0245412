package lease

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

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
	// Kept as this holder's own, so the hourly refresh rewrites it even
	// when the job has nothing new to save: a quiet outbox's cursor
	// must not age out of the bucket while the source runs.
	h.stateRev, h.state = e.Revision(), e.Value()
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
