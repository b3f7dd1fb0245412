route "/sse" {
  keepalive = "1h"
}
