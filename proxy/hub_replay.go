package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// replay fetches for c the events after lastID up to seam (the last one
// the stream had handed out when c joined) and lets c's live events go
// behind them: no gap, no duplicate. When more live events came meanwhile
// than c may hold, it fetches those too, until it has caught up. An id
// beyond the seam, delivered by another replica before this one, needs no
// replay: the live events up to it are skipped (see Client.skipThrough).
// An id that is not a sequence of this stream, or whose followers were
// dropped by the stream's limits, gets the reset event.
func (st *stream) replay(c *Client, lastID string, seam uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), jsTimeout)
	defer cancel()
	// One resume counts once: replayed, or reset (even after a first
	// part was replayed).
	replayed := false
	defer func() {
		if replayed {
			st.m.replayed.Inc()
		} else {
			st.m.reset.Inc()
		}
	}()
	for {
		frames, err := st.fetch(ctx, lastID, seam)
		st.mu.Lock()
		if err != nil {
			if !errors.Is(err, errReset) {
				st.warn().Err(err).Msg("replay from JetStream failed; sending a reset")
			}
			// Held live events follow the seam; dropped or skipped ones
			// are lost to this client, which the reset's id accounts for.
			id := seam
			if c.skipThrough > seam {
				c.skipThrough = 0
				c.discardHeld()
				id = st.lastSeq
			}
			if c.overflowed() {
				id = st.lastSeq
			}
			replayed = false
			c.endHold([][]byte{resetFrame(lastID, strconv.FormatUint(id, 10))}, true)
			st.mu.Unlock()
			return
		}
		replayed = true
		done := c.endHold(frames, false)
		lastID, seam = strconv.FormatUint(max(seam, c.skipThrough), 10), st.lastSeq
		st.mu.Unlock()
		if done {
			return
		}
	}
}

var errReset = errors.New("resume point not in the history")

func (st *stream) fetch(ctx context.Context, lastID string, seam uint64) ([][]byte, error) {
	after, err := strconv.ParseUint(lastID, 10, 64)
	if err != nil {
		return nil, errReset
	}
	if after == seam {
		return nil, nil
	}
	state, err := st.reader.state(ctx)
	if err != nil {
		return nil, err
	}
	// Its followers dropped by the stream's limits: events were missed.
	if after+1 < state.FirstSeq {
		return nil, errReset
	}
	if after > seam {
		// Another replica delivered it first; the live events up to it
		// are skipped as they come. Beyond the stream, it is no id of it.
		if after > state.LastSeq {
			return nil, errReset
		}
		return nil, nil
	}
	if seam-after > bigCatchUp || len(st.parts) > manySubjects {
		frames, read, err := st.readStoredInBatches(ctx, after, seam)
		if err == nil {
			return frames, nil
		}
		if !errors.Is(err, errNoBatches) {
			// A busy cluster can fail a fetch: what was read is kept,
			// and the rest read message by message, within the budget.
			st.debug().Err(err).Uint64("read", read).Msg("replay in batches failed; reading on message by message")
		}
		rest, err := st.readStored(ctx, read, seam)
		return append(frames, rest...), err
	}
	return st.readStored(ctx, after, seam)
}

// bigCatchUp is the number of stored messages past which a replay reads
// in batches through a consumer of its own: one request per message would
// take seconds, and a catch-up that large is rare enough for the
// consumers it makes (one each, for a moment) to stay few.
const bigCatchUp = 500

// manySubjects is the number of subjects past which a replay reads in
// batches however short it is: reading message by message asks for the
// next message of each subject first, one request each.
const manySubjects = 8

// errNoBatches is a replay that cannot read through a consumer (filters
// the server refuses together): it reads message by message instead.
var errNoBatches = errors.New("no consumer for the replay")

// readStoredInBatches returns the frames of the stored messages on the
// stream's subjects after sequence after, up to seam, read in batches by
// a consumer kept on one server, in memory, and deleted when done. On
// error it returns what it read, up to sequence read.
func (st *stream) readStoredInBatches(ctx context.Context, after, seam uint64) (frames [][]byte, read uint64, err error) {
	filters := st.subjectList()
	read = after
	var cons jetstream.Consumer
	err = retryJS(ctx, func(ctx context.Context) error {
		var err error
		cons, err = st.conns.JS().CreateConsumer(ctx, st.reader.name, jetstream.ConsumerConfig{
			FilterSubjects:    filters,
			DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:       after + 1,
			AckPolicy:         jetstream.AckNonePolicy,
			InactiveThreshold: jsTimeout,
			MemoryStorage:     true,
			Replicas:          1, // leader at once: nothing to elect
		})
		return err
	})
	var api *jetstream.APIError
	if errors.As(err, &api) && api.Code == 400 {
		return nil, read, errNoBatches
	}
	if err != nil {
		return nil, read, err
	}
	defer func() {
		// It would expire by itself after InactiveThreshold.
		_ = st.conns.JS().DeleteConsumer(context.WithoutCancel(ctx), st.reader.name, cons.CachedInfo().Name)
	}()
	for pending := cons.CachedInfo().NumPending; pending > 0; {
		batch, err := cons.Fetch(int(min(pending, 256)), jetstream.FetchContext(ctx))
		if err != nil {
			return frames, read, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			pending--
			md, err := m.Metadata()
			if err != nil {
				return frames, read, err
			}
			seq := md.Sequence.Stream
			if seq > seam {
				return frames, read, nil
			}
			frames = st.appendStored(frames, &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}, seq)
			read = seq
			if seq == seam {
				return frames, read, nil
			}
		}
		if err := batch.Error(); err != nil {
			return frames, read, err
		}
		if n == 0 {
			return frames, read, errors.New("replay stalled: JetStream sent nothing")
		}
	}
	return frames, read, nil
}

// readStored returns the frames of the stored messages on the stream's
// subjects after sequence after, up to seam. It reads them one by one
// from the stream's leader (no consumer: a resume leaves nothing on the
// server and needs no consumer's election), taking each subject's next
// message in turn, in sequence order.
func (st *stream) readStored(ctx context.Context, after, seam uint64) ([][]byte, error) {
	subjects := st.subjectList()
	heads := make([]*storedMsg, len(subjects)) // each subject's next message
	done := make([]bool, len(subjects))
	var frames [][]byte
	for seq := after + 1; ; {
		var first *storedMsg
		at := -1
		for i, subject := range subjects {
			if done[i] {
				continue
			}
			if heads[i] == nil || heads[i].Seq < seq {
				m, err := st.nextStored(ctx, subject, seq)
				if err != nil {
					return nil, err
				}
				if m == nil || m.Seq > seam {
					done[i], heads[i] = true, nil
					continue
				}
				heads[i] = m
			}
			if first == nil || heads[i].Seq < first.Seq {
				first, at = heads[i], i
			}
		}
		if first == nil {
			return frames, nil
		}
		heads[at], seq = nil, first.Seq+1
		frames = st.appendStored(frames, first.msg(), first.Seq)
	}
}

// appendStored appends the frame of stored message m, at sequence seq, to
// frames. A message that cannot be an event was rejected (and counted)
// when it was live; here it is only skipped.
func (st *stream) appendStored(frames [][]byte, m *nats.Msg, seq uint64) [][]byte {
	ev, _, err := st.jsEvent(m, false)
	if err != nil {
		return frames
	}
	return append(frames, storedFrame(ev, seq))
}

// storedMsg is a message as JetStream's message get API returns it.
type storedMsg struct {
	Subject string `json:"subject"`
	Seq     uint64 `json:"seq"`
	Header  []byte `json:"hdrs,omitempty"`
	Data    []byte `json:"data,omitempty"`
	header  nats.Header
}

func (m *storedMsg) msg() *nats.Msg {
	return &nats.Msg{Subject: m.Subject, Header: m.header, Data: m.Data}
}

// nextStored returns the first message on subject at or after seq, or nil
// when there is none. It asks the stream's leader, never a replica that
// may lag (as direct gets can be answered), and retries what a busy or
// electing cluster fails while ctx lasts.
func (st *stream) nextStored(ctx context.Context, subject string, seq uint64) (*storedMsg, error) {
	req, err := json.Marshal(struct {
		Seq     uint64 `json:"seq"`
		NextFor string `json:"next_by_subj"`
	}{seq, subject})
	if err != nil {
		return nil, err
	}
	var m *storedMsg
	err = retryJS(ctx, func(ctx context.Context) error {
		reply, err := st.conns.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+st.reader.name, req)
		if err != nil {
			return err
		}
		var resp struct {
			Error   *jetstream.APIError `json:"error"`
			Message *storedMsg          `json:"message"`
		}
		if err := json.Unmarshal(reply.Data, &resp); err != nil {
			return fmt.Errorf("message get answer: %w", err)
		}
		switch {
		case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
			m = nil
			return nil
		case resp.Error != nil:
			return resp.Error
		case resp.Message == nil:
			return errors.New("message get answer without a message")
		}
		m = resp.Message
		if len(m.Header) > 0 {
			if m.header, err = nats.DecodeHeadersMsg(m.Header); err != nil {
				return fmt.Errorf("stored message %d: %w", m.Seq, err)
			}
		}
		return nil
	})
	return m, err
}
