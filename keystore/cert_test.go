package keystore

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-app/gatehouse/internal/testpki"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"software.sslmate.com/src/go-pkcs12"
)

func TestParseClientCert(t *testing.T) {
	ca := testpki.NewCA("Relay CA")
	now := time.Now()
	good := ca.Client("alice", now.Add(-time.Hour), now.Add(90*24*time.Hour))
	other := ca.Client("bob", now.Add(-time.Hour), now.Add(90*24*time.Hour))

	cc, err := ParseClientCertPEM(append(good.CertPEM, ca.PEM...), good.KeyPEM)
	require.NoError(t, err)
	assert.Equal(t, "CN=alice", cc.Info().Subject)
	assert.Equal(t, "CN=Relay CA", cc.Info().Issuer)
	assert.Len(t, strings.Split(cc.Info().Fingerprint, ":"), 32)
	assert.Equal(t, 2, strings.Count(cc.PEM, "BEGIN CERTIFICATE"), "the chain is kept")
	warning, err := cc.Check(now)
	require.NoError(t, err)
	assert.Empty(t, warning)

	_, err = ParseClientCertPEM(good.CertPEM, other.KeyPEM)
	assert.ErrorContains(t, err, "the private key does not belong to the certificate")
	_, err = ParseClientCertPEM(good.KeyPEM, good.KeyPEM)
	assert.ErrorContains(t, err, "holds no PEM certificate")
	_, err = ParseClientCertPEM(good.CertPEM, good.CertPEM)
	assert.ErrorContains(t, err, "holds no PEM private key")

	expired := ca.Client("old", now.Add(-48*time.Hour), now.Add(-time.Hour))
	cc, err = ParseClientCertPEM(expired.CertPEM, expired.KeyPEM)
	require.NoError(t, err)
	_, err = cc.Check(now)
	assert.ErrorContains(t, err, "the certificate expired on")

	soon := ca.Client("soon", now.Add(-time.Hour), now.Add(10*24*time.Hour))
	cc, _ = ParseClientCertPEM(soon.CertPEM, soon.KeyPEM)
	warning, err = cc.Check(now)
	require.NoError(t, err)
	assert.Contains(t, warning, "expires in 9 days")

	p12, err := pkcs12.Modern.Encode(good.Key, good.Cert, []*x509.Certificate{ca.Cert}, "p12-pass")
	require.NoError(t, err)
	cc, err = ParseClientCertP12(p12, "p12-pass")
	require.NoError(t, err)
	assert.Equal(t, "CN=alice", cc.Info().Subject)
	assert.Equal(t, 2, strings.Count(cc.PEM, "BEGIN CERTIFICATE"))
	_, err = ParseClientCertP12(p12, "wrong")
	assert.ErrorContains(t, err, "the PKCS#12 password is wrong")
}

// TestMutualTLS: an upstream that requires a client certificate refuses
// the forwarder until the certificate is in the keychain and accepts it
// after; another upstream without client_cert never sees it.
func TestMutualTLS(t *testing.T) {
	ca := testpki.NewCA("Relay CA")
	client := ca.Client("alice", time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour))

	var seen []string
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "none"
		if len(r.TLS.PeerCertificates) > 0 {
			name = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		seen = append(seen, r.Host+" "+name)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	strict := httptest.NewUnstartedServer(handler)
	strict.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	strict.StartTLS()
	defer strict.Close()
	asking := httptest.NewUnstartedServer(handler)
	asking.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	asking.StartTLS()
	defer asking.Close()

	dir := t.TempDir()
	writePEM := func(name string, srv *httptest.Server) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
		return name
	}
	store := NewMemory()
	creds := NewCredentials(store)
	doc := fmt.Sprintf(`
[[upstreams]]
name = "relay"
base_url = "%s/v1"
models = ["relay-*"]
auth = "none"
client_cert = true
ca_file = %q

[[upstreams]]
name = "other"
base_url = "%s/v1"
models = ["other-*"]
auth = "none"
ca_file = %q

[[upstreams]]
name = "unverified"
base_url = "%s/v1"
models = ["plain-*"]
auth = "none"
`, strict.URL, writePEM("strict.pem", strict), asking.URL, writePEM("asking.pem", asking), asking.URL)
	_, post := forwarderFor(t, dir, doc, creds, nil, nil)

	status, body := post("relay-1")
	assert.Equal(t, http.StatusBadGateway, status, "refused without the certificate")
	assert.Contains(t, body, "gatehouse cert import relay")

	cc, err := ParseClientCertPEM(client.CertPEM, client.KeyPEM)
	require.NoError(t, err)
	require.NoError(t, Secrets{Store: store}.Set(CertName("relay"), cc.PEM))
	creds.Reset()
	status, body = post("relay-1")
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, strings.TrimPrefix(strict.URL, "https://")+" alice", seen[len(seen)-1])

	status, body = post("other-1")
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, strings.TrimPrefix(asking.URL, "https://")+" none", seen[len(seen)-1], "another upstream never gets the certificate")

	status, body = post("plain-1")
	assert.Equal(t, http.StatusBadGateway, status, "certificate verification is never switched off")
	assert.Contains(t, body, "certificate")
}
