route "/sse" {
  source "nats" {
    subject = "events"
    data    = json_encode(msg.json)
  }
}
