route "/a" {
  history = 10
  history {
    store     = "disk"
  }
  source "nats" { subject = "a" }
}

route "/b" {
  history {
    store  = "jetstream"
    stream = "ORDERS"
    max_msgs = 10
  }
  source "nats" { subject = "b" }
}

route "/c" {
  history {
    max_age = "1h"
  }
  source "nats" { subject = "c" }
}
