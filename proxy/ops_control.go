package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/ssegate/ssegate/sources"
	"github.com/ssegate/ssegate/sse"
)

// RevokedEvent is the event a revoked client gets before its stream
// ends: {"reason": "..."}. Its EventSource then reconnects (after a
// retry: hint), and is refused if its credentials no longer let it in.
const RevokedEvent = "ssegate-revoked"

// Revocation selects clients on every replica and ends their streams. At
// least one of Route, Claims or All selects; every field given must
// match. A stream ended this way keeps its history (it lingers as when
// its clients leave), so a client still allowed resumes with no gap.
type Revocation struct {
	// Route is a route's path as configured, like "/u/{name}".
	Route string `json:"route,omitempty"`
	// Params are path parameter values of Route's streams.
	Params map[string]string `json:"params,omitempty"`
	// Topic is one of the topics of Route's streams.
	Topic string `json:"topic,omitempty"`
	// Claims are claim values of the clients, as text: a string, a
	// number or a boolean claim, or one of a list claim's elements.
	Claims map[string]string `json:"claims,omitempty"`
	// All selects every client, as for a deploy (with Reconnect).
	All bool `json:"all,omitempty"`

	// Reason goes to the client in the RevokedEvent.
	Reason string `json:"reason,omitempty"`
	// Reconnect only asks the clients to come back: a retry: hint and no
	// RevokedEvent, for deploys and rebalancing.
	Reconnect bool `json:"reconnect,omitempty"`
}

// Bounds of a Revocation, which comes from NATS or the admin listener.
const (
	maxControlBytes = 64 << 10
	maxSelectors    = 32  // params and claims, each
	maxReasonBytes  = 256 // the reason, each value
)

// check says what is wrong with r, if anything.
func (r *Revocation) check() error {
	switch {
	case r.All && (r.Route != "" || len(r.Params) > 0 || r.Topic != "" || len(r.Claims) > 0):
		return errors.New("all selects every client: give it alone")
	case !r.All && r.Route == "" && len(r.Claims) == 0:
		return errors.New("select clients by route, claims, or all")
	case r.Route == "" && (len(r.Params) > 0 || r.Topic != ""):
		return errors.New("params and topic select streams of a route: give route")
	case len(r.Params) > maxSelectors || len(r.Claims) > maxSelectors:
		return fmt.Errorf("at most %d params and %d claims", maxSelectors, maxSelectors)
	}
	for _, s := range slices.Concat([]string{r.Route, r.Topic, r.Reason}, mapText(r.Params), mapText(r.Claims)) {
		if len(s) > maxReasonBytes || !utf8.ValidString(s) {
			return fmt.Errorf("%.32q...: each name and value is valid UTF-8 of at most %d bytes", s, maxReasonBytes)
		}
	}
	return nil
}

func mapText(m map[string]string) []string {
	out := make([]string, 0, 2*len(m))
	for k, v := range m {
		out = append(out, k, v)
	}
	return out
}

// selects reports whether r selects the streams of st.
func (r *Revocation) selects(st *stream) bool {
	if r.All {
		return true
	}
	if r.Route != "" && st.route.Path != r.Route {
		return false
	}
	for name, v := range r.Params {
		if i := slices.Index(st.route.Params, name); i < 0 || st.params[i] != v {
			return false
		}
	}
	return r.Topic == "" || slices.Contains(st.topics, r.Topic)
}

// selectsClient reports whether r selects a client with claims.
func (r *Revocation) selectsClient(claims map[string]any) bool {
	for name, want := range r.Claims {
		if !claimIs(claims[name], want, true) {
			return false
		}
	}
	return true
}

// claimIs reports whether claim v reads as want: a string, number or
// boolean equal to it, or, with inList, a list holding one.
func claimIs(v any, want string, inList bool) bool {
	switch v := v.(type) {
	case string:
		return v == want
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64) == want
	case json.Number:
		return v.String() == want
	case bool:
		return strconv.FormatBool(v) == want
	case []any:
		return inList && slices.ContainsFunc(v, func(e any) bool { return claimIs(e, want, false) })
	case []string:
		return inList && slices.Contains(v, want)
	}
	return false
}

// revokeHere ends the clients of this replica that r selects and
// returns how many.
func (s *Server) revokeHere(r *Revocation) int {
	s.mu.Lock()
	var streams []*stream
	for _, st := range s.streams {
		if r.selects(st) {
			streams = append(streams, st)
		}
	}
	s.mu.Unlock()
	ended := 0
	for _, st := range streams {
		st.mu.Lock()
		var clients []*Client
		for _, c := range st.clients {
			if r.selectsClient(c.claims) {
				clients = append(clients, c)
			}
		}
		st.mu.Unlock()
		events, why := 1, "stream revoked: "+r.Reason
		if r.Reconnect {
			events, why = 0, "asked to reconnect: "+r.Reason
		}
		for _, c := range clients {
			// A frame each: its retry hint's jitter spreads the clients'
			// return.
			c.finish(revokeFrame(r, st), events, why)
		}
		if len(clients) > 0 {
			st.m.revoked.Add(float64(len(clients)))
		}
		ended += len(clients)
	}
	return ended
}

// revokeFrame is how r ends a client of st: the RevokedEvent and a retry
// hint, or the hint alone for a reconnect.
func revokeFrame(r *Revocation, st *stream) []byte {
	if r.Reconnect {
		return reconnectFrame(st.route, reloadRetry, "reconnect: "+r.Reason)
	}
	data, _ := json.Marshal(struct {
		Reason string `json:"reason"`
	}{r.Reason})
	e, _ := sse.NewEvent(RevokedEvent, string(data)) // JSON of valid UTF-8
	return append(e.Encode(), reconnectFrame(st.route, endOfLifeRetry, "revoked")...)
}

// RevokeResult is what the replicas answered to a Revocation.
type RevokeResult struct {
	// Ended is how many clients the replicas that answered ended.
	Ended int `json:"ended"`
	// Replicas are their answers, as they came.
	Replicas []ReplicaRevoked `json:"replicas"`
}

// ReplicaRevoked is one replica's answer to a Revocation.
type ReplicaRevoked struct {
	Replica string `json:"replica"`
	Ended   int    `json:"ended"`
}

// gatherQuiet is how long a question to every replica waits for one
// more answer when it is not told how many to expect.
const gatherQuiet = 500 * time.Millisecond

// Revoke ends the clients r selects on every replica on this NATS,
// through the control subject, and gathers the replicas' answers: until
// expect of them answered (0: until none answered for half a second), or
// ctx ends. An error means r was not sent (it is invalid, or NATS is
// away); a replica that was away meanwhile ends nothing.
func (s *Server) Revoke(ctx context.Context, r Revocation, expect int) (RevokeResult, error) {
	res := RevokeResult{Replicas: []ReplicaRevoked{}}
	if err := r.check(); err != nil {
		return res, fmt.Errorf("revocation: %w", err)
	}
	err := s.gather(ctx, s.revokeSubject(), r, expect, func(data []byte) bool {
		var a ReplicaRevoked
		if json.Unmarshal(data, &a) != nil {
			return false
		}
		res.Replicas = append(res.Replicas, a)
		res.Ended += a.Ended
		return true
	})
	if err != nil {
		return res, fmt.Errorf("revocation: %w", err)
	}
	return res, nil
}

// gather asks every replica question, as JSON on subject, and hands each
// answer to take, which reports whether it was one: until expect answers
// were (0: until none came for gatherQuiet), or ctx ends. An error means
// the question was not sent.
func (s *Server) gather(ctx context.Context, subject string, question any, expect int, take func([]byte) bool) error {
	body, err := json.Marshal(question)
	if err != nil {
		return err
	}
	nc := s.conns.Conn()
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishMsg(&nats.Msg{Subject: subject, Reply: inbox, Data: body}); err != nil {
		return err
	}
	for answers := 0; expect <= 0 || answers < expect; {
		m, err := nextAnswer(ctx, sub, expect <= 0)
		if err != nil {
			return nil // the wait is over
		}
		if take(m.Data) {
			answers++
		}
	}
	return nil
}

// nextAnswer waits for the next message of sub until ctx ends, or for
// gatherQuiet at most when quiet.
func nextAnswer(ctx context.Context, sub *nats.Subscription, quiet bool) (*nats.Msg, error) {
	if quiet {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, gatherQuiet)
		defer cancel()
	}
	return sub.NextMsgWithContext(ctx)
}

// controlled reports whether subject (which may hold wildcards) could
// reach the control subjects this Server listens on. The config refuses
// sources whose subjects could, as far as it can tell; this checks each
// subject a stream reads or a source publishes to, for the rest (a
// subject of partial tokens, a config reloaded with another
// control_subject than the one the Server started with).
func (s *Server) controlled(subject string) bool {
	return sources.SubjectsOverlap(subject, s.controlAll)
}

// guarded is a publisher that refuses subjects under the control subject.
type guarded struct {
	sources.Publisher
	s *Server
}

func (g guarded) Fits(m *nats.Msg) error {
	if g.s.controlled(m.Subject) {
		return fmt.Errorf("subject %q: %w", m.Subject, sources.ErrReserved)
	}
	return g.Publisher.Fits(m)
}

// revokeSubject is where the replicas take revocations, and
// positionSubject where one of them answers position requests: the nats
// block the Server started with is the one it keeps until a restart.
func (s *Server) revokeSubject() string   { return s.startCfg.NATS.ControlSubject + ".revoke" }
func (s *Server) positionSubject() string { return s.startCfg.NATS.ControlSubject + ".position" }

// positionQueue is the queue group of the replicas' position
// subscriptions: one of them answers each request.
const positionQueue = "ssegate"

// listenControl subscribes to the control subjects on the connection in
// use; called again on a connection that replaced a closed one.
func (s *Server) listenControl() error {
	nc := s.conns.Conn()
	revoke, err := nc.Subscribe(s.revokeSubject(), s.onRevoke)
	if err != nil {
		return fmt.Errorf("control subject: %w", err)
	}
	position, err := nc.QueueSubscribe(s.positionSubject(), positionQueue, s.onPosition)
	if err != nil {
		_ = revoke.Unsubscribe()
		return fmt.Errorf("control subject: %w", err)
	}
	presence, err := nc.Subscribe(s.presenceSubject(), s.onPresence)
	if err != nil {
		_ = revoke.Unsubscribe()
		_ = position.Unsubscribe()
		return fmt.Errorf("control subject: %w", err)
	}
	s.swapControl([]*nats.Subscription{revoke, position, presence})
	return nil
}

// swapControl makes subs the control subscriptions, and drops those it
// replaces.
func (s *Server) swapControl(subs []*nats.Subscription) {
	s.controlMu.Lock()
	prev := s.control
	s.control = subs
	s.controlMu.Unlock()
	for _, sub := range prev {
		_ = sub.Unsubscribe()
	}
}

// onRevoke applies a revocation from NATS and answers how many clients
// it ended here.
func (s *Server) onRevoke(m *nats.Msg) {
	var r Revocation
	err := decodeRevocation(m.Data, &r)
	if err != nil {
		s.warn.Warn().Err(err).Str("subject", m.Subject).Msg("revocation refused")
		return
	}
	n := s.revokeHere(&r)
	s.log.Info().Str("route", r.Route).Interface("params", r.Params).Str("topic", r.Topic).Interface("claims", r.Claims).Bool("all", r.All).
		Bool("reconnect", r.Reconnect).Str("reason", r.Reason).Int("ended", n).Msg("revocation applied")
	if m.Reply == "" {
		return
	}
	answer, _ := json.Marshal(ReplicaRevoked{Replica: s.replica, Ended: n})
	if err := m.Respond(answer); err != nil {
		s.warn.Warn().Err(err).Msg("revocation not answered")
	}
}

// onPosition answers a position request from NATS with the Position.
func (s *Server) onPosition(m *nats.Msg) {
	s.answerRef(m, "position request", func(ref StreamRef) (any, error) {
		ctx, cancel := context.WithTimeout(context.Background(), jsTimeout)
		defer cancel()
		return s.Position(ctx, ref)
	})
}

// answerRef answers a question about a stream from NATS: a StreamRef as
// JSON, answered with what answer says of it, or {"error": "..."}.
func (s *Server) answerRef(m *nats.Msg, what string, answer func(StreamRef) (any, error)) {
	if m.Reply == "" {
		return
	}
	var ref StreamRef
	var a any
	err := decodeControl(m.Data, &ref)
	if err == nil {
		a, err = answer(ref)
	}
	if err != nil {
		a = map[string]string{"error": err.Error()}
	}
	data, _ := json.Marshal(a)
	if err := m.Respond(data); err != nil {
		s.warn.Warn().Err(err).Msg(what + " not answered")
	}
}

// decodeRevocation reads a revocation's JSON, refusing what it does not
// know: a misspelled selector must not widen what is ended.
func decodeRevocation(data []byte, r *Revocation) error {
	if err := decodeControl(data, r); err != nil {
		return fmt.Errorf("revocation: %w", err)
	}
	if err := r.check(); err != nil {
		return fmt.Errorf("revocation: %w", err)
	}
	return nil
}

// decodeControl reads one JSON value of at most maxControlBytes into
// v, refusing fields v does not have.
func decodeControl(data []byte, v any) error {
	if len(data) > maxControlBytes {
		return fmt.Errorf("%d bytes, over %d", len(data), maxControlBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

// stopControl stops taking revocations: on a connection the caller gave
// (WithNATS), the subscription would outlive the Server.
func (s *Server) stopControl() { s.swapControl(nil) }

// replicaName names this process among the replicas: its host and a
// random part, as two processes on one host are two replicas.
func replicaName() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "/" + hex.EncodeToString(b[:])
}

// adminWait bounds how long POST /revoke and /presence wait for the
// replicas.
const adminWait = 10 * time.Second

// serveAsk answers an admin request that asks every replica (POST
// /revoke, /presence): a JSON body of at most maxControlBytes, which read
// parses and checks (400 when it fails), and ?expect=N, the replicas whose
// answers ask waits for (0: until none came for half a second), within
// adminWait (503 when it could not ask).
func serveAsk[Q, A any](w http.ResponseWriter, r *http.Request, read func([]byte) (Q, error), ask func(context.Context, Q, int) (A, error)) {
	expect := 0
	if v := r.URL.Query().Get("expect"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 10000 {
			http.Error(w, "expect is the number of replicas to wait for, from 0 to 10000", http.StatusBadRequest)
			return
		}
		expect = n
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxControlBytes))
	if err != nil {
		http.Error(w, fmt.Sprintf("body: %v (at most %d bytes)", err, maxControlBytes), http.StatusRequestEntityTooLarge)
		return
	}
	q, err := read(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminWait)
	defer cancel()
	a, err := ask(ctx, q, expect)
	if err != nil {
		http.Error(w, "not asked of the replicas: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

// serveRevoke serves POST /revoke on the admin listener: a Revocation,
// answered with the RevokeResult (see serveAsk).
func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
	serveAsk(w, r, func(body []byte) (Revocation, error) {
		var rev Revocation
		return rev, decodeRevocation(body, &rev)
	}, s.Revoke)
}
