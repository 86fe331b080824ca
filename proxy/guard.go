package proxy

import (
	"net"
	"net/http"
	"strings"
)

// The listener serves only this machine. A web page in the user's browser
// must not be able to spend the user's keys: DNS rebinding makes a page's
// requests arrive with a foreign Host, and a simple cross-site POST arrives
// with a foreign Origin. Both are refused; only loopback names and
// addresses (plus allowed_hosts) and listed allowed_origins pass.

// isLoopbackHost reports whether host (no port, no brackets) is "localhost"
// or a loopback IP address.
func isLoopbackHost(host string) bool {
	if host == "127.0.0.1" || host == "localhost" { // as nearly every request names it
		return true
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// hostOnly strips the port and IPv6 brackets from a Host header.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}

// guard returns the refusal for a request from where it may not come, and
// sets CORS headers for an allowed origin.
func (rt *runtime) guard(w http.ResponseWriter, r *http.Request) *apiError {
	host := hostOnly(r.Host)
	if host != "" && !isLoopbackHost(host) && !rt.hosts[strings.ToLower(host)] && !(rt.anyIPHost && net.ParseIP(host) != nil) {
		return newAPIError(http.StatusForbidden, "host_not_allowed",
			"requests must be addressed to localhost or 127.0.0.1; the Host "+quote(host)+" is refused to stop DNS rebinding; if you need that name, add it to allowed_hosts in the config")
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	if !rt.origins[strings.ToLower(origin)] {
		return newAPIError(http.StatusForbidden, "origin_not_allowed",
			"requests from web pages are refused so that no site can spend your keys; to allow the origin "+quote(origin)+", add it to allowed_origins in the config")
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", "*")
	h.Add("Vary", "Origin")
	return nil
}

func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" &&
		r.Header.Get("Access-Control-Request-Method") != ""
}

// preflight answers a CORS preflight of an allowed origin (guard has
// already refused the others).
func (rt *runtime) preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		h.Set("Access-Control-Allow-Headers", req)
	}
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}
