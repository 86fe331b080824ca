//go:build !windows && !darwin

package proxy

import (
	"net/http"
	"net/url"

	"golang.org/x/net/http/httpproxy"
)

// systemProxyFunc: on Linux the desktop's proxy settings reach programs
// as HTTP_PROXY, HTTPS_PROXY and NO_PROXY (read when a route is built, so
// what the window shows is what the next request uses).
func systemProxyFunc() func(*http.Request) (*url.URL, error) {
	f := httpproxy.FromEnvironment().ProxyFunc()
	return func(r *http.Request) (*url.URL, error) { return f(r.URL) }
}
