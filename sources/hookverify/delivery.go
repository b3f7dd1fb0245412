package hookverify

import (
	"encoding/json"
	"net/http"
)

// deliveryHeaders are the headers in which senders name a delivery, in order
// of preference; a retry carries the same value as the original attempt.
var deliveryHeaders = []string{
	"webhook-id",        // Standard Webhooks
	"X-GitHub-Delivery", // GitHub
}

// DeliveryID returns the sender's id for this delivery, for de-duplicating
// retries, or "" when the request has none. It lives here because knowing
// which header a sender uses is the same knowledge as knowing how it signs.
//
// Stripe sends no delivery header: its event's own id, in the signed body,
// names the delivery, so a replay within the signature's tolerance is
// accepted once. GitHub's header is not signed: a replay with a new
// delivery id is a new delivery, within the signature check alone.
func DeliveryID(h http.Header, body []byte) string {
	for _, name := range deliveryHeaders {
		if id := h.Get(name); id != "" {
			return id
		}
	}
	if h.Get(stripeHeader) != "" {
		var ev struct {
			ID     string `json:"id"`
			Object string `json:"object"`
		}
		if json.Unmarshal(body, &ev) == nil && ev.Object == "event" {
			return ev.ID
		}
	}
	return ""
}
