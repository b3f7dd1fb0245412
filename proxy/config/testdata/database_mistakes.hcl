route "/a" {
  source "postgres" {
    dsn   = "postgres://u:secret@db:5432/app"
    query = "SELECT id FROM outbox ORDER BY id"
  }
}
route "/b" {
  source "postgres" {
    dsn = "postgres://u:secret@db:5432/app?sslmode=sometimes"
    channel = "x"
  }
}
route "/c" {
  source "postgres" {
    dsn    = "postgres://db/app"
    query  = "SELECT id FROM outbox WHERE id > $1"
    cursor = "id"
    data   = msg.fields.n
  }
}
route "/d" {
  source "redis" {
    url     = "redis://cache:6379/0"
    channel = "a"
    stream  = "b"
  }
}
route "/e/{id}" {
  source "redis" {
    url    = "redis://cache:6379/0"
    stream = "b"
  }
}
route "/f" {
  source "kafka" {
    brokers        = ["k:9092"]
    topic          = "t"
    sasl_mechanism = "PLAIN"
    data           = msg.row.x
  }
}
route "/g" {
  source "redis" {
    url     = "memcached://cache"
    channel = "a"
  }
}
