package proxy

// resumeHold keeps a resuming client's live frames back while its replay
// is fetched from JetStream, so that the replay goes out first and the
// live frames follow with no gap and no duplicate. It is the client's,
// guarded by the client's lock; the stream, which knows the sequences,
// drives it (Client.holdLive, Client.endHold) under its own lock.
type resumeHold struct {
	on       bool     // live frames wait here
	held     [][]byte // at most the client's limit
	overflow bool     // more came: they were dropped, and the replay fetches them
}

// keep holds a live frame. Held frames are also in the history the replay
// reads: past limit they are all dropped here and fetched there instead.
func (h *resumeHold) keep(frame []byte, limit int) {
	switch {
	case h.overflow:
	case len(h.held) >= limit:
		h.held, h.overflow = nil, true
	default:
		h.held = append(h.held, frame)
	}
}

// holdLive keeps live frames back until endHold: a replay fetched
// elsewhere goes first.
func (c *Client) holdLive() {
	c.mu.Lock()
	c.hold.on = true
	c.mu.Unlock()
}

// endHold queues replayed frames, then the live frames held meanwhile,
// and ends the hold. When held frames were dropped it queues the replay
// only, keeps holding and returns false: the caller fetches what was
// dropped and calls again. force ends the hold anyway, dropping what is
// held. Called with the stream's lock held, so no live frame comes between.
func (c *Client) endHold(frames [][]byte, force bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.takesFrames() {
		return true
	}
	h := &c.hold
	c.queue = append(c.queue, frames...)
	c.backlog += len(frames)
	done := force || !h.overflow
	if done {
		if !h.overflow {
			// Part of the catch-up too: the limit is for what comes live
			// from now on, which the writer could not be behind on yet.
			c.queue = append(c.queue, h.held...)
			c.backlog += len(h.held)
		}
		h.on = false
	}
	h.held, h.overflow = nil, false
	c.kick()
	return done
}

// discardHeld drops the live frames held so far.
func (c *Client) discardHeld() {
	c.mu.Lock()
	c.hold.held = nil
	c.mu.Unlock()
}

// overflowed reports whether held frames were dropped.
func (c *Client) overflowed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hold.overflow
}
