route "/weather/{city}" {
  source "poll" {
    url      = "http://127.0.0.1:1/weather?q=${path.city}"
    subject  = "weather"
    interval = "1ms"
    emit     = "sometimes"
    items    = msg.json.list
    key      = msg.jsn.id
  }
}
