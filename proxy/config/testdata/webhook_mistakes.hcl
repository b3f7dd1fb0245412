route "/repos/{repo}" {
  source "webhook" {
    path = "/hooks/a"
    verify "hmac" { secret = "s" }
  }
}

route "/teams/{team}/{repo}" {
  source "webhook" {
    path    = "/hooks/b"
    subject = "gh.${msg.json.repository.name}"
    verify "none" {}
  }
}

route "/orgs/{org}" {
  source "webhook" {
    path    = "/hooks/c"
    subject = "org.${path.org}"
    verify "none" {}
  }
}

route "/deploys" {
  source "webhook" {
    path = "/hooks/d"
  }
  source "webhook" {
    path = "/hooks/a"
    verify "bearer" { tokens = [] }
  }
  source "webhook" {
    path = "/hooks/e"
    verify "hmac" { secret = "" }
  }
}

route "/builds" {
  source "webhook" {
    path          = "/hooks/../builds/"
    methods       = ["POST", "post"]
    content_types = ["application/json; charset=utf-8"]
    verify "hmac" {
      secret = "s"
      header = ""
    }
  }
}
