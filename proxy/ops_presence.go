package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ssegate/ssegate/sources"
)

// PresenceEvent is what a route with presence { subject = ... }
// publishes there when a client joins or leaves one of its streams.
type PresenceEvent struct {
	Event   string            `json:"event"` // "join" or "leave"
	Route   string            `json:"route"`
	Params  map[string]string `json:"params,omitempty"`
	Topics  []string          `json:"topics,omitempty"`
	Replica string            `json:"replica"`
	// Client is what the route's presence shows of the client: its
	// claims of the names presence { claims } gives.
	Client map[string]any `json:"client,omitempty"`
	// Here is how many clients the stream has on this replica, after.
	Here int       `json:"here"`
	Time time.Time `json:"time"`
}

// PresenceResult is who is on a stream, as the replicas that answered
// know it.
type PresenceResult struct {
	Count    int               `json:"count"`
	Clients  []PresentClient   `json:"clients"`
	Replicas []ReplicaPresence `json:"replicas"`
}

// PresentClient is one client on a stream: what the route's presence
// shows of it, and the replica it is on.
type PresentClient struct {
	Replica string         `json:"replica"`
	Client  map[string]any `json:"client,omitempty"`
}

// ReplicaPresence is one replica's answer: how many clients it has on
// the stream, and whether it listed them all (at most maxPresent, and
// what fits in a NATS message).
type ReplicaPresence struct {
	Replica   string           `json:"replica"`
	Count     int              `json:"count"`
	Clients   []map[string]any `json:"clients,omitempty"`
	Truncated bool             `json:"truncated,omitempty"`
}

// maxPresent bounds the clients one replica lists in an answer; the
// count is always whole.
const maxPresent = 1000

// presenceSubject is where the replicas answer presence questions.
func (s *Server) presenceSubject() string { return s.startCfg.NATS.ControlSubject + ".presence" }

// Presence asks every replica who is on the stream ref names (its claims
// only pick the stream, as for a route whose subject reads them; allow is
// not asked), and gathers the answers: until expect replicas answered (0:
// until none answered for half a second), or ctx ends. The route must
// have a presence block.
func (s *Server) Presence(ctx context.Context, ref StreamRef, expect int) (PresenceResult, error) {
	res := PresenceResult{Clients: []PresentClient{}, Replicas: []ReplicaPresence{}}
	if _, err := s.presenceStream(ref); err != nil {
		return res, err // the same here as on every replica with this config
	}
	err := s.gather(ctx, s.presenceSubject(), ref, expect, func(data []byte) bool {
		var a ReplicaPresence
		if json.Unmarshal(data, &a) != nil || a.Replica == "" {
			return false
		}
		res.Count += a.Count
		for _, c := range a.Clients {
			res.Clients = append(res.Clients, PresentClient{Replica: a.Replica, Client: c})
		}
		a.Clients = nil
		res.Replicas = append(res.Replicas, a)
		return true
	})
	if err != nil {
		return res, fmt.Errorf("presence: %w", err)
	}
	return res, nil
}

// presentHere is who is on the stream ref names on this replica.
func (s *Server) presentHere(ref StreamRef) (ReplicaPresence, error) {
	a := ReplicaPresence{Replica: s.replica}
	id, err := s.presenceStream(ref)
	if err != nil {
		return a, err
	}
	s.mu.Lock()
	st := s.streams[id.key]
	s.mu.Unlock()
	if st == nil {
		return a, nil
	}
	// The answer must fit in a NATS message, whatever the claims hold.
	room := int(s.conns.Conn().MaxPayload()) - presenceHeadroom
	st.mu.Lock()
	defer st.mu.Unlock()
	a.Count = len(st.clients)
	for _, c := range st.clients {
		client := shown(id.rt.Presence.Claims, c.claims)
		size := 5 // null and a comma
		if client != nil {
			b, _ := json.Marshal(client) // claims came from JSON
			size = len(b) + 1
		}
		if len(a.Clients) == maxPresent || size > room {
			a.Truncated = true
			break
		}
		room -= size
		a.Clients = append(a.Clients, client)
	}
	return a, nil
}

// presenceHeadroom is what a presence answer takes beside its clients.
const presenceHeadroom = 1 << 10

// presenceStream names the stream ref does, on a route with presence.
func (s *Server) presenceStream(ref StreamRef) (streamID, error) {
	id, err := s.identifyRef(ref, false)
	if err == nil && id.rt.Presence == nil {
		err = fmt.Errorf("route %q has no presence block", ref.Route)
	}
	return id, err
}

// onPresence answers a presence question from NATS with what this
// replica knows.
func (s *Server) onPresence(m *nats.Msg) {
	s.answerRef(m, "presence question", func(ref StreamRef) (any, error) { return s.presentHere(ref) })
}

// shown is what a presence shows of a client with claims: those named.
func shown(names []string, claims map[string]any) map[string]any {
	if len(names) == 0 {
		return nil
	}
	out := make(map[string]any, len(names))
	for _, n := range names {
		if v, ok := claims[n]; ok {
			out[n] = v
		}
	}
	return out
}

// announce publishes that c joined or left st ("join", "leave") on the
// stream's presence subject, if it has one. Core NATS, not waited for: a
// presence event lost to a NATS outage is not worth holding a client.
func (s *Server) announce(st *stream, c *Client, event string) {
	if st.presence == "" {
		return
	}
	st.mu.Lock()
	here := len(st.clients)
	st.mu.Unlock()
	data, _ := json.Marshal(PresenceEvent{
		Event: event, Route: st.route.Path, Params: st.presenceParams, Topics: st.topics, Replica: s.replica,
		Client: shown(st.route.Presence.Claims, c.claims), Here: here, Time: time.Now().UTC(),
	})
	if err := s.conns.Conn().Publish(st.presence, data); err != nil {
		st.sampledWarn().Err(err).Msg("presence event not published")
	}
}

// presenceOf resolves the presence subject of stream st, named by id,
// or "" when its route publishes none or the subject cannot be one
// (logged).
func (s *Server) presenceOf(st *stream, id streamID) string {
	p := st.route.Presence
	if p == nil || p.Subject == nil {
		return ""
	}
	subject, err := p.SubjectIn(id.vars)
	if err == nil {
		if err = sources.CheckPublishable(subject); err == nil && s.controlled(subject) {
			err = fmt.Errorf("presence subject %q is under the control subject", subject)
		}
	}
	if err == nil {
		// Made once: each join and leave names them.
		if len(st.params) > 0 {
			st.presenceParams = make(map[string]string, len(st.params))
			for i, name := range st.route.Params {
				st.presenceParams[name] = st.params[i]
			}
		}
		return subject
	}
	st.warn().Err(err).Msg("no presence events for this stream")
	return ""
}

// servePresence serves POST /presence on the admin listener: a
// StreamRef, answered with the PresenceResult (see serveAsk).
func (s *Server) servePresence(w http.ResponseWriter, r *http.Request) {
	serveAsk(w, r, func(body []byte) (StreamRef, error) {
		var ref StreamRef
		err := decodeControl(body, &ref)
		if err == nil {
			_, err = s.presenceStream(ref) // what is wrong with ref, first
		}
		if err != nil {
			return ref, fmt.Errorf("stream: %w", err)
		}
		return ref, nil
	}, s.Presence)
}
