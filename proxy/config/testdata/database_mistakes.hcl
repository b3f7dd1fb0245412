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
    query  = "SELECT id FROM outbox WHERE id > $1 ORDER BY id LIMIT 10"
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
route "/h" {
  source "kafka" {
    brokers = ["k:9092"]
    topic   = "a"
  }
  source "kafka" {
    brokers = ["k:9092"]
    topic   = "b"
  }
}
route "/i" {
  source "postgres" {
    dsn    = "postgres://db/app"
    query  = "SELECT id FROM outbox WHERE id > $1 ORDER BY id"
    cursor = "id"
  }
}
route "/j" {
  source "kafka" {
    brokers = ["k:9092"]
    topic   = "a"
  }
  source "kafka" {
    brokers = ["k:9092"]
    topic   = "a"
    id      = "b-${msg.id}"
  }
}
route "/k" {
  source "kafka" {
    brokers = ["k:9092"]
    topic   = "a"
    ca_file = "missing-ca.pem"
  }
}
route "/l" {
  source "redis" {
    url    = "redis://cache:6379/0"
    stream = "s"
  }
  source "redis" {
    url    = "redis://cache:6379/0"
    stream = "s"
    id     = "b-${msg.id}"
  }
}
