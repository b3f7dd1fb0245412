auth "jwt" "users" {
  hmac_secret = "short"
  algorithms  = ["none", "RS256"]
}

auth "jwt" "both" {
  hmac_secret = "0123456789abcdef0123456789abcdef"
  jwks_url    = "https://id.example.com/jwks.json"
}

route "/me" {
  auth = ["users", "admins"]
  source "nats" {
    subject = "user.${auth.claims.sub}"
    data    = auth.claims.sub
  }
}

route "/open" {
  allow = auth.claims.admin
  source "nats" { subject = "open" }
}

auth "jwt" "a{b}" {
  jwks_url = "https://id.example.com/jwks.json"
}

auth "jwt" "remote" {
  jwks_url = "http://id.example.com/jwks.json"
}

route "/count" {
  auth  = "remote"
  allow = 1
  source "nats" { subject = "count" }
}
