// Command benchmock is the upstream `make bench` and `make soak` send
// requests to: internal/mockllm on a loopback port, which it prints. Like
// the floor, it is a program of its own, so that the load generator, the
// forwarder and the upstream are three programs, as an IDE, Gatehouse and
// a provider are (see internal/benchfloor for why that matters here).
package main

import (
	"fmt"
	"log"
	"net"
	"net/http"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr().String())
	log.Fatal((&http.Server{Handler: &mockllm.Server{NoRecord: true, RateLimits: true}}).Serve(ln))
}
