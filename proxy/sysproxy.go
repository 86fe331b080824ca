package proxy

import (
	"net/http"
	"net/url"
)

// via = "system" follows the operating system's proxy settings, as a
// desktop user expects: on Windows and macOS the system's settings (PAC
// included, through github.com/mattn/go-ieproxy, sysproxy_os.go); on Linux
// and elsewhere HTTP_PROXY, HTTPS_PROXY and NO_PROXY (sysproxy_env.go).

// SystemProxy says where via = "system" sends a request to target right
// now: the proxy's URL (its password left out), or "" for direct.
func SystemProxy(target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", err
	}
	p, err := systemProxyFunc()(&http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}})
	if err != nil || p == nil {
		return "", err
	}
	return p.Redacted(), nil
}
