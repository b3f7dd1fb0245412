package auth_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssegate/ssegate/proxy/auth"
)

// A ticket is good until its ttl has passed, and then refused; on
// synctest's clock, so the test waits for no second to pass.
func TestTicketExpires(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		tickets := auth.NewTickets(auth.NewBearer([]string{"service-token"}), time.Minute)
		issue := func() string {
			t.Helper()
			req := httptest.NewRequest(http.MethodPost, "/ssegate/tickets/ops", nil)
			req.Header.Set("Authorization", "Bearer service-token")
			rec := httptest.NewRecorder()
			tickets.ServeHTTP(rec, req)
			var body struct {
				Ticket    string `json:"ticket"`
				ExpiresIn int    `json:"expires_in"`
			}
			if err := json.NewDecoder(rec.Body).Decode(&body); err != nil || rec.Code != http.StatusOK || body.ExpiresIn != 60 {
				t.Fatalf("ticket: %d %+v %v", rec.Code, body, err)
			}
			return body.Ticket
		}
		use := func(ticket string) error {
			_, err := tickets.Authenticate(httptest.NewRequest(http.MethodGet, "/me?ticket="+ticket, nil))
			return err
		}
		tk := issue()
		time.Sleep(time.Minute - time.Second)
		if err := use(tk); err != nil {
			t.Fatalf("a ticket within its ttl: %v", err)
		}
		time.Sleep(2 * time.Second)
		if err := use(tk); err == nil {
			t.Fatal("a ticket past its ttl was taken")
		}
	})
}
