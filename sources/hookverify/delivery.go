package hookverify

import "net/http"

// deliveryHeaders are the headers in which senders name a delivery, in order
// of preference; a retry carries the same value as the original attempt.
var deliveryHeaders = []string{
	"webhook-id",        // Standard Webhooks
	"X-GitHub-Delivery", // GitHub
}

// DeliveryID returns the sender's id for this delivery, for de-duplicating
// retries, or "" when the request has none. It lives here because knowing
// which header a sender uses is the same knowledge as knowing how it signs.
func DeliveryID(h http.Header) string {
	for _, name := range deliveryHeaders {
		if id := h.Get(name); id != "" {
			return id
		}
	}
	return ""
}
