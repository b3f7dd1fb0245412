package sources

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// checkpointEvery bounds how often a reader's progress is saved for the
// next replica to run it: at most this much is emitted again after a
// replica dies. A clean stop saves the last progress too.
const checkpointEvery = time.Second

// finalSaveTimeout bounds the save made when a feed stops.
const finalSaveTimeout = 2 * time.Second

// progressor is a Reader whose progress (what it has emitted) can be
// handed to another replica, so the feed goes on there without emitting
// anything twice.
type progressor interface {
	Reader
	// progress encodes what the reader has handed on, or returns nil when
	// that did not change since the last call.
	progress() []byte
	// resume carries on from an encoded progress.
	resume([]byte) error
}

// runCheckpointed runs r like Run, after resuming it from saved, and saves
// its progress with save as batches are handed on (at most every
// checkpointEvery) and when ctx ends.
func runCheckpointed(ctx context.Context, r Reader, saved []byte, save func(context.Context, []byte) error, handle func(context.Context, Batch) error, log zerolog.Logger, st *Status) {
	p, ok := r.(progressor)
	if !ok {
		Run(ctx, r, handle, log, st)
		return
	}
	if saved != nil {
		if err := p.resume(saved); err != nil {
			log.Warn().Err(err).Msg("progress of the previous replica unreadable; starting afresh")
		} else {
			log.Debug().Msg("resumed from the previous replica's progress")
		}
	}
	c := &checkpointer{progressor: p, save: save, warn: sampled(log)}
	Run(ctx, c, handle, log, st)
	// ctx has ended: the last save gets a context of its own, short so
	// that a NATS outage does not hold up a shutdown.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalSaveTimeout)
	defer cancel()
	c.checkpoint(sctx)
}

// checkpointer saves its reader's progress after the batches it commits.
type checkpointer struct {
	progressor
	save func(context.Context, []byte) error
	warn zerolog.Logger
	last time.Time
}

func (c *checkpointer) Read(ctx context.Context) (Batch, error) {
	b, err := c.progressor.Read(ctx)
	if err != nil || b.Commit == nil {
		return b, err
	}
	commit := b.Commit
	b.Commit = func() {
		commit()
		if time.Since(c.last) >= checkpointEvery {
			c.checkpoint(ctx)
		}
	}
	return b, nil
}

// checkpoint saves the progress if it changed. A failed save is only
// logged: the feed goes on, and the next holder may emit a little again.
func (c *checkpointer) checkpoint(ctx context.Context) {
	state := c.progress()
	if state == nil {
		return
	}
	c.last = time.Now()
	if err := c.save(ctx, state); err != nil {
		c.warn.Warn().Err(err).Msg("progress not saved for the next replica")
	}
}
