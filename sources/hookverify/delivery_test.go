package hookverify_test

import (
	"net/http"
	"testing"

	"github.com/ssegate/ssegate/sources/hookverify"
)

func TestDeliveryID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		h    http.Header
		body string
		want string
	}{
		{"none", header(), "", ""},
		{"nil header", nil, "", ""},
		{"standard webhooks", header("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"), "", "msg_p5jXN8AQM9LWM0D4loKWxJek"},
		{"github", header("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"), "", "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		{"both: webhook-id wins", header("X-GitHub-Delivery", "gh", "webhook-id", "sw"), "", "sw"},
		{"empty webhook-id falls through", header("webhook-id", "", "X-GitHub-Delivery", "gh"), "", "gh"},
		{"stripe: the signed event id", header("Stripe-Signature", "t=1,v1=ab"), `{"id":"evt_1","object":"event"}`, "evt_1"},
		{"stripe: not an event", header("Stripe-Signature", "t=1,v1=ab"), `{"id":"evt_1"}`, ""},
		{"stripe: not JSON", header("Stripe-Signature", "t=1,v1=ab"), `evt_1`, ""},
		{"an id in the body is not enough", header(), `{"id":"evt_1","object":"event"}`, ""},
		{"unrelated id header", header("X-Request-Id", "abc"), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hookverify.DeliveryID(tt.h, []byte(tt.body)); got != tt.want {
				t.Errorf("DeliveryID = %q, want %q", got, tt.want)
			}
		})
	}
}
