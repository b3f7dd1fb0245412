package proxy_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	gosse "github.com/tmaxmax/go-sse"

	"github.com/ssegate/ssegate/proxy"
	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/sse"
)

// Mount ssegate at a path of an existing server, as the Node "sse" library
// attaches to an http.Server: verify each request, greet each client, and
// broadcast by publishing to the route's subject. With no nats block in
// the config, New starts an embedded NATS server in-process.
func Example() {
	cfg, err := config.Parse([]byte(`
route "/events" {
  source "nats" { subject = "news" }
}`), "inline.hcl")
	if err != nil {
		panic(err)
	}
	srv, err := proxy.New(cfg,
		proxy.VerifyRequest(func(r *http.Request) bool {
			return r.URL.Query().Get("token") == "let-me-in"
		}),
		proxy.OnConnect(func(c *proxy.Client) {
			name := c.Request().URL.Query().Get("name")
			if name == "" {
				ask, _ := sse.NewEvent("greeting", "who are you?")
				_ = c.Send(ask)
				c.Close(time.Minute) // this client only, once the greeting is out
				return
			}
			hello, _ := sse.NewEvent("greeting", "hello, "+name)
			_ = c.Send(hello)
		}),
	)
	if err != nil {
		panic(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "home page") })
	mux.Handle("/events", srv)
	ts := httptest.NewServer(mux)
	defer ts.Close()

	resp, err := http.Get(ts.URL + "/events?token=wrong")
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println("refused:", resp.Status)

	resp, err = http.Get(ts.URL + "/events?token=let-me-in&name=ada")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	// The answer's head arrives once the client has joined its stream,
	// so everything published from now on reaches it.
	if err := srv.Conn().Publish("news", []byte("ssegate is live")); err != nil {
		panic(err)
	}
	n := 0
	for ev, err := range gosse.Read(resp.Body, nil) {
		if err != nil {
			panic(err)
		}
		if ev.Type == "" {
			ev.Type = "message"
		}
		fmt.Printf("%s: %s\n", ev.Type, ev.Data)
		if n++; n == 2 {
			break
		}
	}

	anonymous, err := http.Get(ts.URL + "/events?token=let-me-in")
	if err != nil {
		panic(err)
	}
	defer anonymous.Body.Close()
	for ev, err := range gosse.Read(anonymous.Body, nil) {
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s: %s\n", ev.Type, ev.Data)
	}
	fmt.Println("closed")
	// Output:
	// refused: 403 Forbidden
	// greeting: hello, ada
	// message: ssegate is live
	// greeting: who are you?
	// closed
}
