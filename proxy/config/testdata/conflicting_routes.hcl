route "/a/{x}" {
  source "nats" { subject = "a.${path.x}" }
}
route "/{y}/b" {
  source "nats" { subject = "b.${path.y}" }
}
