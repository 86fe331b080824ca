// Command benchfloor is the floor `make bench` measures Gatehouse against:
// a bare httputil.ReverseProxy that only sets the key, the least a Go
// forwarder can do. It is a program of its own: run from the same program
// as the mock upstream and the load, it shares their machine code at the
// same addresses, and the processor's caches and branch predictors trained
// by one serve the other; that made it 20–45 µs faster per request here
// than the very same code built on its own, an edge gatehouse cannot have.
//
// Usage: benchfloor UPSTREAM-URL KEY. It prints the address it serves on,
// and answers GET /gatehouse/status with its allocation counters, as
// gatehouse serve does.
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
)

func main() {
	if len(os.Args) != 3 {
		log.Fatal("usage: benchfloor UPSTREAM-URL KEY")
	}
	target, err := url.Parse(os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	key := os.Args[2]
	rp := &httputil.ReverseProxy{
		Transport: &http.Transport{MaxIdleConnsPerHost: 256},
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set("Authorization", "Bearer "+key)
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr().String())
	log.Fatal((&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/gatehouse/status" {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			_ = json.NewEncoder(w).Encode(map[string]any{"process": map[string]uint64{
				"mallocs": ms.Mallocs, "alloc_bytes": ms.TotalAlloc, "heap_bytes": ms.HeapAlloc}})
			return
		}
		rp.ServeHTTP(w, r)
	})}).Serve(ln))
}
