package main

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/gatehouse-app/gatehouse/internal/testpki"
	"github.com/gatehouse-app/gatehouse/keystore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"software.sslmate.com/src/go-pkcs12"
)

func TestCertCommands(t *testing.T) {
	mem := useMemoryStore(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, twoUpstreams)
	ca := testpki.NewCA("Relay CA")
	now := time.Now()
	good := ca.Client("alice", now.Add(-time.Hour), now.Add(90*24*time.Hour))
	soon := ca.Client("soon", now.Add(-time.Hour), now.Add(5*24*time.Hour))
	expired := ca.Client("old", now.Add(-48*time.Hour), now.Add(-time.Hour))
	file := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, string(data))
		return p
	}
	p12, err := pkcs12.Modern.Encode(good.Key, good.Cert, nil, "pfx-pass")
	require.NoError(t, err)

	code, out, errOut := gh(t, "", "cert", "import", "openai", "--cert", file("c.pem", good.CertPEM), "--key", file("k.pem", good.KeyPEM), "--config", cfg)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "subject  CN=alice")
	cfgText, _ := os.ReadFile(cfg)
	assert.Contains(t, string(cfgText), "client_cert = true")
	assert.NotContains(t, string(cfgText), "PRIVATE KEY")
	stored, err := keystore.StoredClientCert(keystore.Secrets{Store: mem}, "openai")
	require.NoError(t, err)
	assert.Equal(t, "CN=alice", stored.Info().Subject)

	code, _, errOut = gh(t, "pfx-pass\n", "cert", "import", "anthropic", "--p12", file("c.p12", p12), "--config", cfg)
	require.Equal(t, 0, code, errOut)

	code, out, _ = gh(t, "", "cert", "list", "--config", cfg)
	require.Equal(t, 0, code)
	assert.Regexp(t, regexp.MustCompile(`openai\s+CN=alice\s+CN=Relay CA\s+\d{4}-\d\d-\d\d\s+([0-9A-F]{2}:){31}[0-9A-F]{2}`), out)
	assert.Regexp(t, regexp.MustCompile(`anthropic\s+CN=alice`), out)

	code, _, errOut = gh(t, "", "cert", "import", "openai", "--cert", file("s.pem", soon.CertPEM), "--key", file("sk.pem", soon.KeyPEM), "--config", cfg)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, errOut, "warning: the certificate expires in 4 days")

	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"cert", "import", "openai", "--cert", file("g.pem", good.CertPEM), "--key", file("x.pem", soon.KeyPEM)}, "the private key does not belong to the certificate"},
		{"", []string{"cert", "import", "openai", "--cert", file("e.pem", expired.CertPEM), "--key", file("ek.pem", expired.KeyPEM)}, "the certificate expired on"},
		{"wrong\n", []string{"cert", "import", "openai", "--p12", file("w.p12", p12)}, "the PKCS#12 password is wrong"},
		{"", []string{"cert", "import", "nope", "--p12", file("n.p12", p12)}, `no upstream named "nope"`},
	} {
		code, _, errOut := gh(t, tc.stdin, append(tc.args, "--config", cfg)...)
		assert.Equal(t, 1, code, "%v", tc.args)
		assert.Contains(t, errOut, tc.want)
	}
	stored, _ = keystore.StoredClientCert(keystore.Secrets{Store: mem}, "openai")
	assert.Equal(t, "CN=soon", stored.Info().Subject, "a refused import changes nothing")

	code, _, _ = gh(t, "", "cert", "import", "openai", "--config", cfg)
	assert.Equal(t, 2, code)

	code, out, errOut = gh(t, "", "cert", "rm", "openai", "--config", cfg)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "Removed the client certificate")
	cfgText, _ = os.ReadFile(cfg)
	assert.Len(t, regexp.MustCompile(`client_cert = true`).FindAll(cfgText, -1), 1, "only anthropic keeps its certificate")
	_, err = keystore.StoredClientCert(keystore.Secrets{Store: mem}, "openai")
	assert.ErrorIs(t, err, keystore.ErrNotFound)
}
