package sources

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/ssegate/ssegate/sources/hookverify"
	"github.com/ssegate/ssegate/sse"
)

type webhookHandler struct {
	w    *webhookSource
	pub  Publisher
	log  zerolog.Logger
	warn zerolog.Logger
	seen *dedup
	// answered, if set, is told each answer's status.
	answered func(status int)
}

func (h *webhookHandler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	status, reason, eventID := h.serve(rw, r)
	if h.answered != nil {
		h.answered(status)
	}
	if status >= 400 {
		h.log.Debug().Int("status", status).Str("reason", reason).Str("remote", r.RemoteAddr).Msg("webhook refused")
		http.Error(rw, reason, status)
		return
	}
	// The id lets a backend tell a page where its state stands (see
	// docs/positions.md).
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	_ = json.NewEncoder(rw).Encode(struct {
		Status string `json:"status"`
		ID     string `json:"id,omitempty"`
	}{reason, eventID})
}

// serve handles a delivery and returns the answer's status and reason,
// and, once accepted, the id its event has on its streams when that is
// known here: the JetStream sequence on a route whose history is there,
// else the event's own id ("" when the streams assign one).
func (h *webhookHandler) serve(rw http.ResponseWriter, r *http.Request) (status int, reason, eventID string) {
	w := h.w
	if len(w.ContentTypes) > 0 && !h.acceptsType(r.Header.Get("Content-Type")) {
		return http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q is not accepted here; send one of %s", r.Header.Get("Content-Type"), strings.Join(w.ContentTypes, ", ")), ""
	}
	// A sender that trickles its body would hold a handler, a connection
	// and up to max_body of memory for as long as it likes.
	rc := http.NewResponseController(rw)
	_ = rc.SetReadDeadline(time.Now().Add(w.BodyTimeout)) // not supported: the server's own timeouts hold
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, int64(w.MaxBody)))
	_ = rc.SetReadDeadline(time.Time{})
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", w.MaxBody), ""
	case errors.Is(err, os.ErrDeadlineExceeded):
		rw.Header().Set("Connection", "close")
		return http.StatusRequestTimeout, fmt.Sprintf("body not received within %v", w.BodyTimeout), ""
	case err != nil:
		return http.StatusBadRequest, "reading the body: " + err.Error(), ""
	}
	if w.verify != nil {
		if err := w.verify.Verify(r.Header, body, time.Now()); err != nil {
			// A 401 names a scheme; signatures have no registered one.
			scheme := "Signature"
			if w.bearer {
				scheme = "Bearer"
			}
			rw.Header().Set("WWW-Authenticate", scheme)
			return http.StatusUnauthorized, "verification failed: " + err.Error(), ""
		}
	}

	msg := Message{Headers: r.Header, Body: body}
	// The mapping and the subject read the delivery in one context.
	msgCtx := msg.context(w.ctx, w.Mapping.need|w.need)
	ev, err := w.Mapping.applyIn(msgCtx, &msg)
	switch {
	case errors.Is(err, sse.ErrInvalidField):
		// Accepted, it would be dropped by every replica.
		return http.StatusUnprocessableEntity, "this delivery makes an event that cannot be sent: " + err.Error(), ""
	case err != nil:
		h.log.Debug().Err(err).Msg("webhook delivery not mapped")
		return http.StatusBadRequest, "cannot map this delivery: " + forSender(err), ""
	}
	subject, err := w.subjectIn(msgCtx)
	if err != nil {
		h.log.Debug().Err(err).Msg("webhook delivery makes no subject")
		return http.StatusUnprocessableEntity, "this delivery makes no subject NATS takes: " + forSender(err), ""
	}

	// A sender retries what it thinks failed: the same delivery id within
	// the window is accepted again without a second event.
	id := hookverify.DeliveryID(r.Header, body)
	if id == "" {
		id, _ = ev.ID()
	}
	if id != "" {
		switch h.seen.reserve(id, time.Now()) {
		case dupSeen:
			return http.StatusAccepted, "duplicate", ""
		case dupInFlight:
			return http.StatusConflict, "the same delivery is being accepted right now; retry later", ""
		}
	}
	m := EncodeEvent(subject, ev)
	if id != "" {
		m.Header.Set(nats.MsgIdHdr, id)
	}
	var seqs []uint64
	err = h.pub.Fits(m)
	if err == nil {
		seqs, err = h.pub.Publish(r.Context(), m)
	}
	if err != nil {
		if id != "" {
			h.seen.cancel(id)
		}
		if errors.Is(err, errTooLarge) {
			return http.StatusRequestEntityTooLarge, "the event is " + err.Error(), ""
		}
		if errors.Is(err, ErrReserved) {
			return http.StatusUnprocessableEntity, "this delivery makes a subject ssegate keeps for itself: " + forSender(err), ""
		}
		h.warn.Warn().Err(err).Str("subject", subject).Msg("webhook not handed on to NATS")
		rw.Header().Set("Retry-After", "5")
		return http.StatusServiceUnavailable, "event bus unavailable; retry later", ""
	}
	if id != "" {
		h.seen.confirm(id, time.Now())
	}
	eventID, _ = ev.ID()
	if len(seqs) == 1 {
		eventID = strconv.FormatUint(seqs[0], 10)
	}
	return http.StatusAccepted, "accepted", eventID
}

// forSender is err as a delivery's sender may read it: an expression's
// diagnostics without their file, line and column, which are the
// config's layout, not the sender's business (the log has them).
func forSender(err error) string {
	var diags hcl.Diagnostics
	if !errors.As(err, &diags) {
		return err.Error()
	}
	parts := make([]string, 0, len(diags))
	for _, d := range diags {
		parts = append(parts, strings.TrimSuffix(d.Summary+": "+d.Detail, ": "))
	}
	msg := strings.Join(parts, "; ")
	if before, _, ok := strings.Cut(err.Error(), diags.Error()); ok {
		msg = before + msg // the context wrapped around them
	}
	return msg
}

func (h *webhookHandler) acceptsType(header string) bool {
	mt, _, err := mime.ParseMediaType(header)
	if err != nil {
		return false
	}
	for _, ct := range h.w.ContentTypes {
		if strings.EqualFold(mt, ct) {
			return true
		}
	}
	return false
}
