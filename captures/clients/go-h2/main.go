// go-h2: Go net/http (its built-in HTTP/2 client) over TLS with ALPN h2, for captures/h2/.
//
//	go-h2 refused|goaway|nginx BASE      (the TLS key log goes to $SSLKEYLOGFILE)
//
// Go 1.19 has no cleartext HTTP/2 in net/http (http.Protocols.SetUnencryptedHTTP2 came in
// Go 1.24), hence TLS everywhere.  All requests: one Authorization, JSON bodies.
//
//	refused: GET; keyed POST with "X-H2-Test: refuse-once=go" (h2_server.py answers its
//	  first stream RST_STREAM(REFUSED_STREAM); Go's transport retries it by itself, same key,
//	  because the body can be re-read); the same POST again (replayed).
//	goaway: GET; three concurrent keyed POSTs with "X-H2-Test: goaway-batch=3" (h2_server.py
//	  answers the lowest stream, then GOAWAY(last_stream_id = it, NO_ERROR) and closes; Go
//	  retries the two others on a new connection by itself, same keys).
//	nginx: GET; keyed POST; the same key twice CONCURRENTLY (the first with
//	  "X-Test-Mode: slow=800", the second 100 ms later: 409 while the first is in flight);
//	  then the same key once more (replayed).
package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

var client *http.Client
var base string

func do(method, path, key, body string, extra map[string]string) {
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body)) // bytes.Reader: NewRequest sets GetBody, so retries are possible
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		fmt.Println("request:", err)
		os.Exit(1)
	}
	req.Header.Set("Authorization", "Bearer sk_test_4eC39HqLyjWDarjtT1zdp7dc")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println(method, path, key, "error:", err)
		return
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Proto, resp.StatusCode, method, path, key, len(b), "bytes, replayed:", resp.Header.Get("Idempotent-Replayed"))
}

func concurrent(fns ...func()) {
	var wg sync.WaitGroup
	for _, f := range fns {
		wg.Add(1)
		go func(f func()) { defer wg.Done(); f() }(f)
	}
	wg.Wait()
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: go-h2 refused|goaway|nginx BASE")
		os.Exit(2)
	}
	base = os.Args[2]
	cfg := &tls.Config{InsecureSkipVerify: true, ServerName: "api.example.com"}
	if p := os.Getenv("SSLKEYLOGFILE"); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer f.Close()
		cfg.KeyLogWriter = f
	}
	client = &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}, Timeout: 20 * time.Second}
	charge := func(amount int) string {
		return fmt.Sprintf(`{"amount":%d,"currency":"usd","customer":"cus_GoH2Client01"}`, amount)
	}
	do("GET", "/v1/charges?limit=1", "", "", nil)
	switch os.Args[1] {
	case "refused":
		k := "90a2e000-0000-4000-8000-000000000001"
		do("POST", "/v1/charges", k, charge(500), map[string]string{"X-H2-Test": "refuse-once=go"})
		do("POST", "/v1/charges", k, charge(500), nil)
	case "goaway":
		t := map[string]string{"X-H2-Test": "goaway-batch=3"}
		concurrent(
			func() { do("POST", "/v1/charges", "90a2e000-0000-4000-8000-000000000011", charge(1100), t) },
			func() { do("POST", "/v1/charges", "90a2e000-0000-4000-8000-000000000012", charge(1200), t) },
			func() { do("POST", "/v1/charges", "90a2e000-0000-4000-8000-000000000013", charge(1300), t) },
		)
	case "nginx":
		do("POST", "/v1/charges", "90a2e000-0000-4000-8000-000000000021", charge(2100), nil)
		k := "90a2e000-0000-4000-8000-000000000022"
		concurrent(
			func() { do("POST", "/v1/charges", k, charge(2200), map[string]string{"X-Test-Mode": "slow=800"}) },
			func() { time.Sleep(100 * time.Millisecond); do("POST", "/v1/charges", k, charge(2200), nil) },
		)
		do("POST", "/v1/charges", k, charge(2200), nil)
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
	client.CloseIdleConnections()
}
