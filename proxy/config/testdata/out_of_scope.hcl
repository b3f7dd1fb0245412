route "/stocks/{symbol}" {
  source "nats" {
    subject = "stocks.${path.sym}"
    data    = msg.payload
    event   = request.method
  }
}
