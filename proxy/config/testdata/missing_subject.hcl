route "/sse" {
  source "nats" {
    event = "tick"
  }
}
