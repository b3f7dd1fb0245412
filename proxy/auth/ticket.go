package auth

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"
)

// ticketLimit bounds the tickets outstanding at once.
const ticketLimit = 100_000

// Tickets lets a client that an authenticator accepts (by header or
// cookie) exchange that for a short-lived, single-use ticket, which a
// browser then puts in the stream URL (?ticket=) instead of a long-lived
// token: URLs end up in logs and histories, a used ticket is worthless.
// Tickets live in this process: behind several replicas, send the stream
// request to the one that issued it, or use cookies.
type Tickets struct {
	inner Authenticator
	ttl   time.Duration

	mu     sync.Mutex
	issued map[string]ticket
	order  []string // issued values, oldest first from head, for eviction
	head   int
}

var _ Authenticator = (*Tickets)(nil)

type ticket struct {
	id      *Identity
	expires time.Time
}

// NewTickets issues tickets valid for ttl to whom inner accepts.
func NewTickets(inner Authenticator, ttl time.Duration) *Tickets {
	return &Tickets{inner: inner, ttl: ttl, issued: map[string]ticket{}}
}

// Authenticate accepts a ticket when the URL has a valid one, and
// otherwise asks the inner authenticator. The ticket is spent only by the
// identity's Consume.
func (t *Tickets) Authenticate(r *http.Request) (*Identity, error) {
	value := r.URL.Query().Get("ticket")
	if value == "" {
		return t.inner.Authenticate(r)
	}
	t.mu.Lock()
	tk, ok := t.issued[value]
	t.mu.Unlock()
	if !ok || time.Now().After(tk.expires) {
		// A stale ticket beside valid credentials does not lock them out.
		if id, err := t.inner.Authenticate(r); err == nil {
			return id, nil
		}
		return nil, refuse("ticket unknown, used or expired")
	}
	id := *tk.id
	id.Consume = func() bool {
		t.mu.Lock()
		defer t.mu.Unlock()
		if _, ok := t.issued[value]; !ok {
			return false
		}
		delete(t.issued, value)
		return true
	}
	return &id, nil
}

// Challenge is the inner authenticator's.
func (t *Tickets) Challenge() string { return t.inner.Challenge() }

// ServeHTTP issues a ticket: POST with the usual credentials, answered
// {"ticket": "...", "expires_in": seconds}.
func (t *Tickets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Has("ticket") {
		// A ticket buys no ticket: that would make them last forever.
		w.Header().Set("WWW-Authenticate", t.Challenge())
		http.Error(w, "unauthorized: a ticket cannot be exchanged for another", http.StatusUnauthorized)
		return
	}
	id, err := t.inner.Authenticate(r)
	var refused *Error
	switch {
	case errors.Is(err, ErrNoCredentials):
		w.Header().Set("WWW-Authenticate", t.Challenge())
		http.Error(w, "unauthorized: credentials required", http.StatusUnauthorized)
		return
	case errors.As(err, &refused):
		if refused.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", t.Challenge())
		}
		http.Error(w, http.StatusText(refused.Status)+": "+refused.Reason, refused.Status)
		return
	case err != nil:
		w.Header().Set("Retry-After", "5")
		http.Error(w, "authentication unavailable; retry later", http.StatusServiceUnavailable)
		return
	}
	value := t.issue(id)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"ticket": value, "expires_in": int(t.ttl.Seconds())})
}

func (t *Tickets) issue(id *Identity) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails
	value := base64.RawURLEncoding.EncodeToString(b)
	t.mu.Lock()
	defer t.mu.Unlock()
	// Tickets expire in the order they were issued: drop the used and
	// expired ones from the front, and at the limit the oldest outstanding
	// one too, so one client issuing without pause cannot shut the door
	// on the others.
	now := time.Now()
	for t.head < len(t.order) {
		v := t.order[t.head]
		tk, live := t.issued[v]
		if live && now.Before(tk.expires) && len(t.issued) < ticketLimit {
			break
		}
		delete(t.issued, v)
		t.order[t.head] = ""
		t.head++
	}
	if t.head > len(t.order)/2 {
		t.order = append(t.order[:0], t.order[t.head:]...)
		t.head = 0
	}
	t.issued[value] = ticket{id: id, expires: now.Add(t.ttl)}
	t.order = append(t.order, value)
	return value
}
