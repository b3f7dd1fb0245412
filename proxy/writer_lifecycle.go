package proxy

import "slices"

// lifecycle is where a client is between joining its stream and leaving
// it. Only moveTo changes it, and only along these moves:
//
//	open ──finish──▶ closing ──the writer takes the last frame──▶ draining ──written──▶ closed
//	  └────────────────┴──────────────────lose──────────────────────┴──▶ lost
//	closed, lost ──end──▶ over
//
// discard moves a client that never joined a stream (a hook kept it)
// from open, closing or lost straight to over. Whether the client is
// started (has its writer) is apart from this: before start, frames only
// queue.
type lifecycle uint8

const (
	open     lifecycle = iota // takes frames, written once started
	closing                   // its last frame is set, to go out after what is queued
	draining                  // the writer took the last frame: takes no more frames
	closed                    // the last frame went out: nothing more is written
	lost                      // left or dropped: nothing more is written, the sink aborted
	over                      // its end ran: out of its stream, Done closed
)

// moves are the states each state may move to.
var moves = [...][]lifecycle{
	open:     {closing, lost, over},
	closing:  {draining, lost, over},
	draining: {closed, lost},
	closed:   {over},
	lost:     {over},
	over:     nil,
}

// moveTo moves c to next, if that move is legal from where c is, and
// reports whether it did. Called with c.mu held.
func (c *Client) moveTo(next lifecycle) bool {
	if !slices.Contains(moves[c.state], next) {
		return false
	}
	c.state = next
	return true
}

// takesFrames reports whether frames may still be queued for c.
func (c *Client) takesFrames() bool { return c.state == open || c.state == closing }

// stopped reports whether nothing more is written to c.
func (c *Client) stopped() bool { return c.state >= closed }
