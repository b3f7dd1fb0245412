package proxy

import (
	"net/http"
	"strconv"

	"github.com/ssegate/ssegate/proxy/config"
)

// servePage answers GET and HEAD with a page block's file, read when the
// config was.
func servePage(p *config.Page) http.Handler {
	size := strconv.Itoa(len(p.Body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", p.ContentType)
		h.Set("Content-Length", size)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(p.Body)
	})
}
