//go:build !windows && !darwin

package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSystemProxyFollowsTheEnvironmentOnLinux(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://me:pw-5ecret@127.0.0.1:3128")
	t.Setenv("NO_PROXY", "internal.example")
	got, err := SystemProxy("https://api.openai.com/v1")
	require.NoError(t, err)
	require.Equal(t, "http://me:xxxxx@127.0.0.1:3128", got)
	got, err = SystemProxy("https://internal.example/v1")
	require.NoError(t, err)
	require.Empty(t, got, "NO_PROXY is direct")
}
