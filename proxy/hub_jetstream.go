package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/sse"
)

// jsTimeout bounds one JetStream request: a stream's setup or a replay.
const jsTimeout = 10 * time.Second

// jsDuplicateWindow is how long JetStream remembers Nats-Msg-Ids, which
// makes a retried webhook delivery (or the same poll on two replicas) one
// event.
const jsDuplicateWindow = 10 * time.Minute

// setupJetStream creates or updates the JetStream stream of rt's history,
// or checks that a stream it names exists, and returns its name and the
// route's subjects ("*" where a stream's varies).
func (s *Server) setupJetStream(cfg *config.Config, rt *config.Route) (string, []string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), jsTimeout)
	defer cancel()
	js := s.conns.JS()
	var subjects []string
	for _, src := range rt.Sources {
		p, err := src.Pattern(cfg.EvalContext)
		if err != nil {
			return "", nil, err
		}
		if !slices.Contains(subjects, p) {
			subjects = append(subjects, p)
		}
	}
	if name := rt.JetStream.Stream; name != "" {
		if _, err := js.Stream(ctx, name); err != nil {
			return "", nil, fmt.Errorf("stream %q: %w", name, err)
		}
		return name, subjects, nil
	}
	sum := sha256.Sum256([]byte(rt.Path))
	name := "SSEGATE_" + strings.ToUpper(hex.EncodeToString(sum[:8]))
	limit := func(n int64) int64 {
		if n == 0 {
			return -1
		}
		return n
	}
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        name,
		Description: "ssegate history of route " + rt.Path,
		Subjects:    subjects,
		MaxMsgs:     limit(rt.JetStream.MaxMsgs),
		MaxBytes:    limit(rt.JetStream.MaxBytes),
		MaxAge:      rt.JetStream.MaxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    rt.JetStream.Replicas,
		Duplicates:  jsDuplicateWindow,
	})
	if err != nil {
		return "", nil, fmt.Errorf("create or update stream %s for %q: %w", name, subjects, err)
	}
	return name, subjects, nil
}

// subscribeJetStream has the route's reader hand the stream the messages
// on its subjects from the one after the last the reader read: events
// before that are history, replayed to the clients that ask.
func (st *stream) subscribeJetStream(reader *jsReader) error {
	st.reader = reader
	ctx, cancel := context.WithTimeout(context.Background(), jsTimeout)
	defer cancel()
	return reader.add(ctx, st)
}

// jsEvent maps a stored message with the part whose subject it is on,
// and returns that part too; live, it counts the message as received by
// the part's source.
func (st *stream) jsEvent(msg *nats.Msg, live bool) (sse.Event, part, error) {
	return st.jsEventAt(st.partOf(msg.Subject), msg, live)
}

// jsEventAt is jsEvent for a message found on part k (-1: none).
func (st *stream) jsEventAt(k int, msg *nats.Msg, live bool) (sse.Event, part, error) {
	if k < 0 {
		return sse.Event{}, part{}, fmt.Errorf("message on %q matches no source", msg.Subject)
	}
	p := st.parts[k]
	if live {
		st.m.received[p.source].Inc()
	}
	e, err := st.eventOf(p, msg)
	return e, p, err
}

// passOver moves the stream past seq, whose message could not be an
// event, so that the seam of a later replay is exact.
func (st *stream) passOver(seq uint64) {
	st.mu.Lock()
	st.lastSeq = max(st.lastSeq, seq)
	st.mu.Unlock()
}

// missedLive tells the stream's clients that the JetStream messages after
// sequence last, through upTo, went before this replica read them: every
// stream of the route is told (which subjects they were on is lost with
// them), with a reset whose id resumes after upTo. A client that resumed
// past them on another replica (skipThrough) missed nothing.
func (st *stream) missedLive(last, upTo uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return
	}
	st.lastSeq = max(st.lastSeq, upTo)
	frame := resetFrame(strconv.FormatUint(last, 10), strconv.FormatUint(upTo, 10))
	for _, c := range st.clients {
		if c.skipThrough >= upTo {
			continue
		}
		st.m.reset.Inc()
		c.push(frame)
	}
}

// jsAttemptTimeout bounds one JetStream request of a replay: an answer
// lost in a leader election is asked for again, not waited out.
const jsAttemptTimeout = 2 * time.Second

// retryJS runs request until it succeeds, fails for good, or ctx ends.
// What a busy or electing cluster fails (no answer in time, nobody to
// answer yet, JetStream unavailable for now) is tried again, so that an
// honest client is not told it lost events because the machine was slow.
func retryJS(ctx context.Context, request func(context.Context) error) error {
	for delay := 20 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		attempt, cancel := context.WithTimeout(ctx, jsAttemptTimeout)
		err := request(attempt)
		cancel()
		if err == nil || !transientJS(err) {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (and again until %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}

// transientJS reports whether a JetStream request may succeed if sent
// again.
func transientJS(err error) bool {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		return api.Code == 503 || api.Code == 408 || api.ErrorCode == jetstream.JSErrCodeJetStreamNotEnabled
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected)
}

// subjectMatches reports whether subject is matched by pattern, which may
// hold "*" and a final ">".
// It allocates nothing: it runs for every message of a JetStream stream.
func subjectMatches(pattern, subject string) bool {
	for {
		ptok, prest, pmore := strings.Cut(pattern, ".")
		if ptok == ">" {
			return subject != ""
		}
		stok, srest, smore := strings.Cut(subject, ".")
		if subject == "" || (ptok != "*" && ptok != stok) {
			return false
		}
		if !pmore || !smore {
			return pmore == smore
		}
		pattern, subject = prest, srest
	}
}
