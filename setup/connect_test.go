package setup

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestLoopbackURL(t *testing.T) {
	for listen, want := range map[string]string{
		"127.0.0.1:4747": "http://127.0.0.1:4747",
		"0.0.0.0:4747":   "http://127.0.0.1:4747",
		":4747":          "http://127.0.0.1:4747",
		"[::]:4747":      "http://[::1]:4747",
		"[::1]:4747":     "http://[::1]:4747",
		"localhost:4747": "http://localhost:4747",
		"127.0.0.2:4747": "http://127.0.0.2:4747",
	} {
		assert.Equal(t, want, LoopbackURL(listen), listen)
	}
}
