listen = "127.0.0.1:http"

nats {
  embedded { listen = "127.0.0.1:70000" }
}
