listen           = "0.0.0.0:9000"
shutdown_timeout = "3s"
shutdown_delay   = "2s"

log {
  level  = "debug"
  format = "json"
}

admin {
  listen = "127.0.0.1:9100"
}

nats {
  name = "edge-1"
  embedded {
    listen    = "127.0.0.1:4333"
    store_dir = "/tmp/ssegate-js"
  }
}

route "/stocks/{symbol}" {
  keepalive     = "0s"
  retry         = "2500ms"
  history       = 10
  linger        = "1m"
  buffer        = 8
  write_timeout = "2s"
  source "nats" {
    subject = "stocks.${lower(path.symbol)}"
    event   = "quote"
    id      = msg.headers["Nats-Msg-Id"]
    data    = jsonencode(msg.json)
  }
  source "nats" {
    subject = "halts.${path.symbol}"
  }
}

route "/files/{rest...}" {
  source "nats" { subject = "files.${path.rest}" }
}
