package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// errProxyAuth is a proxy's 407 answer.
var errProxyAuth = errors.New("Proxy Authentication Required")

// StatusClientClosed is logged when the client went away before the answer
// was complete (nginx's 499); it is never sent.
const StatusClientClosed = 499

// apiError is an error the forwarder makes itself, in OpenAI's shape, so
// that every SDK shows its message.
type apiError struct {
	Status  int    `json:"-"`
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    string `json:"code"`
}

func (e *apiError) Error() string { return e.Message }

func newAPIError(status int, code, msg string) *apiError {
	typ := "invalid_request_error"
	switch {
	case status == http.StatusUnauthorized:
		typ = "authentication_error"
	case status == http.StatusForbidden:
		typ = "permission_error"
	case status >= 500:
		typ = "upstream_error"
	}
	return &apiError{Status: status, Message: msg, Type: typ, Code: code}
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	body, _ := json.Marshal(struct {
		Error *apiError `json:"error"`
	}{e})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(e.Status)
	_, _ = w.Write(append(body, '\n'))
}

// upstreamError maps an error from reaching an upstream to what the client
// gets: 499 when the client went away, 504 on a timeout, else 502.
func upstreamError(ctx context.Context, upstream string, err error) *apiError {
	if errors.Is(ctx.Err(), context.Canceled) {
		return newAPIError(StatusClientClosed, "client_closed", "the client closed the request")
	}
	var down *allDownError
	if errors.As(err, &down) {
		return newAPIError(http.StatusServiceUnavailable, "pool_unavailable",
			err.Error()+"; check the proxies with `gatehouse check`, pin or enable another member, or set fallback_direct = true on the pool")
	}
	if errors.Is(err, errProxyAuth) || strings.Contains(err.Error(), "Proxy Authentication Required") ||
		strings.Contains(err.Error(), "username/password authentication failed") {
		return newAPIError(http.StatusBadGateway, "proxy_auth_failed",
			"the proxy of upstream "+quote(upstream)+" refused the user name or password; store the right password with `gatehouse proxy-password set URL`")
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() ||
		strings.Contains(err.Error(), "timeout awaiting response headers") {
		return newAPIError(http.StatusGatewayTimeout, "upstream_timeout",
			"upstream "+quote(upstream)+" did not answer in time ("+err.Error()+"); check the upstream's status, or raise first_byte_timeout (streams) or request_timeout (plain answers) in the config")
	}
	return newAPIError(http.StatusBadGateway, "upstream_unreachable",
		"upstream "+quote(upstream)+" could not be reached ("+err.Error()+"); check its base_url, your network and its via route")
}

func tooLargeMessage(limit int64) string {
	return "the request body is larger than the limit of " + formatMiB(limit) + "; send less, or raise max_body_mb in the config"
}

func quote(s string) string { return `"` + s + `"` }

func formatMiB(n int64) string {
	if n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
