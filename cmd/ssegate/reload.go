package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// runReload is `ssegate reload`: it asks a running ssegate, through its
// admin listener, to read its config again. The answer says whether the
// new config was applied or why it was refused (the old one then goes on).
func runReload(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("reload", stdout)
	admin := fs.String("admin", "http://127.0.0.1:9090", "the running ssegate's admin listener")
	var headers []string
	headerFlag(fs, &headers, "a request header, `Name: value` (repeatable), for the admin block's auth")
	if code, done := parseOnlyFlags(fs, args, stderr); done {
		return code
	}
	req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(*admin, "/")+"/reload", nil)
	if err != nil {
		fmt.Fprintln(stderr, "ssegate reload:", err)
		return 2
	}
	addHeaders(req, headers)
	// Long enough for JetStream streams of new routes to be made.
	hc := &http.Client{Timeout: time.Minute}
	resp, err := hc.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "ssegate reload:", err)
		return 1
	}
	defer resp.Body.Close()
	var answer struct {
		Reloaded bool   `json:"reloaded"`
		Error    string `json:"error"`
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err := json.Unmarshal(body, &answer); err != nil {
		fmt.Fprintf(stderr, "ssegate reload: %s: %s\n", resp.Status, strings.TrimSpace(string(body)))
		return 1
	}
	if !answer.Reloaded {
		fmt.Fprintf(stderr, "ssegate reload: refused; the old config goes on:\n%s\n", answer.Error)
		return 1
	}
	fmt.Fprintln(stdout, "reloaded")
	return 0
}
