package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// readBody reads the whole request body, at most limit bytes, into one
// buffer sized from Content-Length when the client sent one. The buffer is
// the only copy the forwarder holds: the model is read from it in place and
// it is sent upstream as it is (and replayed from it on a retry).
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	if r.ContentLength >= 0 {
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	var b bytes.Buffer
	_, err := b.ReadFrom(http.MaxBytesReader(nil, r.Body, limit))
	return b.Bytes(), err
}

// Reasons a body gives no model.
var (
	errNoModel       = errors.New("no model")
	errModelNotAText = errors.New("model is not a string")
)

// extractModel reads the model a request asks for: the top-level "model"
// field of a JSON body, or the "model" field of a multipart form (audio
// transcriptions). It does not copy or decode the rest of the body.
func extractModel(contentType string, body []byte) (string, error) {
	if len(body) == 0 {
		return "", errNoModel
	}
	if len(contentType) >= 10 && strings.EqualFold(contentType[:10], "multipart/") {
		if mediaType, params, err := mime.ParseMediaType(contentType); err == nil && mediaType == "multipart/form-data" {
			return multipartModel(body, params["boundary"])
		}
	}
	res := gjson.GetBytes(body, "model")
	switch {
	case !res.Exists():
		return "", errNoModel
	case res.Type != gjson.String || !utf8.ValidString(res.Str):
		return "", errModelNotAText
	case res.Str == "":
		return "", errNoModel
	}
	return res.Str, nil
}

// maxModelName bounds a model name read from a form part.
const maxModelName = 1024

func multipartModel(body []byte, boundary string) (string, error) {
	if boundary == "" {
		return "", fmt.Errorf("%w: multipart body without a boundary", errNoModel)
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for {
		part, err := mr.NextPart()
		if err != nil {
			return "", errNoModel
		}
		if part.FormName() != "model" {
			continue
		}
		name, err := io.ReadAll(io.LimitReader(part, maxModelName+1))
		if err != nil || len(name) == 0 || len(name) > maxModelName {
			return "", errNoModel
		}
		return string(name), nil
	}
}
