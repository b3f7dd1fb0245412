route "/a" {
  source "nats" { subject = "ssegate.control.revoke" }
}
route "/b/{x}/{y}" {
  source "nats" { subject = "${path.x}.control.${path.y}" }
}
route "/c" {
  source "nats" { subject = "ssegate.>" }
}
route "/d" {
  source "nats" { subject = "ssegate.controls.x" }
}
