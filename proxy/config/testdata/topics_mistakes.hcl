route "/a" {
  topics {
    query   = "lastEventId"
    max     = 5000
    refused = "ignore"
  }
  topics {}
  source "nats" {
    subject = "status"
    event   = topic.name
  }
}
route "/b" {
  topics {}
  source "webhook" {
    path = "/hooks/b"
    verify "none" {}
  }
}
route "/c" {
  topics {}
  source "poll" {
    url     = "http://127.0.0.1:1/${topic.name}"
    subject = "quotes.all"
  }
}
route "/d" {
  slow_consumer = "newest"
  source "nats" { subject = "d" }
}
