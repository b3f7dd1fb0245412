h2c             = true
trusted_proxies = ["10.0.0.0/8", "proxy.internal"]

tls {
  cert_file = "cert.pem"
  key_file  = "key.pem"
}

cors {
  allow_origins     = ["*"]
  allow_credentials = true
}

route "/a" {
  max_clients = -1
  cors {
    allow_origins = ["https://app.example.com/path", "HTTPS://App.example.com"]
  }
  source "nats" { subject = "a" }
}
