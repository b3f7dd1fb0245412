auth "bearer" "b" {
  tokens = ["t"]
}
route "/a/{room}" {
  auth = "b"
  presence {
    subject = "presence.all"
  }
  source "nats" { subject = "a.${path.room}" }
}
route "/b" {
  presence {
    claims = ["sub"]
  }
  presence {}
  source "nats" { subject = "b" }
}
route "/c/{x}" {
  presence {
    subject = "ssegate.control.${path.x}"
  }
  source "nats" { subject = "c.${path.x}" }
}
route "/d" {
  presence {
    subject = "presence.${msg.subject}"
  }
  source "nats" { subject = "d" }
}
