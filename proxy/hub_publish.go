package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/ssegate/ssegate/sources"
)

// Publish hands data to NATS on subject, for the streams that read it on
// every replica, as a backend publishing there would, and returns the id
// its event gets on them when that is known now: on a route whose history
// is in JetStream, the sequence JetStream stored it at (Publish waits for
// the acknowledgement); otherwise "", as each stream assigns one when it
// comes (Publish waits for NATS to have the message). See
// docs/positions.md for what the id is good for.
func (s *Server) Publish(ctx context.Context, subject string, data []byte) (string, error) {
	if err := sources.CheckPublishable(subject); err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	if s.controlled(subject) {
		return "", errors.New("publish: the control subject is not for events")
	}
	m := &nats.Msg{Subject: subject, Data: data}
	if !s.keptInJetStream(subject) {
		_, err := sources.CorePublisher(s.conns).Publish(ctx, m)
		return "", err
	}
	seqs, err := sources.JetStreamPublisher(s.conns).Publish(ctx, m)
	if err != nil {
		return "", err
	}
	return strconv.FormatUint(seqs[0], 10), nil
}

// keptInJetStream reports whether a route whose history is in JetStream
// reads subject.
func (s *Server) keptInJetStream(subject string) bool {
	for _, rs := range s.snapshot().routes {
		if rs.reader == nil {
			continue
		}
		if slices.ContainsFunc(rs.reader.subjects, func(p string) bool { return subjectMatches(p, subject) }) {
			return true
		}
	}
	return false
}
