//go:build windows || darwin

package proxy

import (
	"net/http"
	"net/url"

	"github.com/mattn/go-ieproxy"
)

// systemProxyFunc reads the system's proxy settings (and PAC file) each
// time it is asked; go-ieproxy caches them for the process.
func systemProxyFunc() func(*http.Request) (*url.URL, error) {
	return ieproxy.GetProxyFunc()
}
