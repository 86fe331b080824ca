package keystore

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// expiryWarning is how close to its end a certificate makes import warn.
const expiryWarning = 30 * 24 * time.Hour

// ClientCert is a client certificate with its chain and private key, as
// one PEM text (certificates first, then the key) ready for the keychain.
type ClientCert struct {
	PEM  string
	Leaf *x509.Certificate
}

// CertInfo describes a certificate for `gatehouse cert list`.
type CertInfo struct {
	Subject     string
	Issuer      string
	NotAfter    time.Time
	Fingerprint string // SHA-256 of the DER, hex with colons
}

// Info describes the leaf certificate.
func (c *ClientCert) Info() CertInfo {
	sum := sha256.Sum256(c.Leaf.Raw)
	hexes := make([]string, len(sum))
	for i, b := range sum {
		hexes[i] = fmt.Sprintf("%02X", b)
	}
	return CertInfo{
		Subject:     c.Leaf.Subject.String(),
		Issuer:      c.Leaf.Issuer.String(),
		NotAfter:    c.Leaf.NotAfter,
		Fingerprint: strings.Join(hexes, ":"),
	}
}

// Check refuses a certificate that is expired or not valid yet, and
// returns a warning when fewer than 30 days are left.
func (c *ClientCert) Check(now time.Time) (warning string, err error) {
	switch {
	case now.After(c.Leaf.NotAfter):
		return "", fmt.Errorf("the certificate expired on %s; ask for a new one", c.Leaf.NotAfter.Format(time.DateOnly))
	case now.Before(c.Leaf.NotBefore):
		return "", fmt.Errorf("the certificate is not valid before %s; check the computer's clock or wait", c.Leaf.NotBefore.Format(time.DateOnly))
	case c.Leaf.NotAfter.Sub(now) < expiryWarning:
		days := int(c.Leaf.NotAfter.Sub(now).Hours() / 24)
		return fmt.Sprintf("the certificate expires in %d days, on %s; ask for a new one soon", days, c.Leaf.NotAfter.Format(time.DateOnly)), nil
	}
	return "", nil
}

// ParseClientCertPEM reads a certificate (with its chain) and its private
// key from PEM files' contents and checks that they belong together.
func ParseClientCertPEM(certPEM, keyPEM []byte) (*ClientCert, error) {
	var certs bytes.Buffer
	for rest := certPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			_ = pem.Encode(&certs, block)
		}
	}
	if certs.Len() == 0 {
		return nil, errors.New("the certificate file holds no PEM certificate (\"BEGIN CERTIFICATE\"); for a .p12 or .pfx file use --p12")
	}
	var key *pem.Block
	for rest := keyPEM; ; {
		key, rest = pem.Decode(rest)
		if key == nil || strings.HasSuffix(key.Type, "PRIVATE KEY") {
			break
		}
	}
	if key == nil {
		return nil, errors.New("the key file holds no PEM private key (\"BEGIN PRIVATE KEY\"); an encrypted key must be decrypted first, e.g. with openssl pkey")
	}
	blob := certs.String() + string(pem.EncodeToMemory(key))
	return parseBlob(blob)
}

// ParseClientCertP12 reads a PKCS#12 (.p12, .pfx) file.
func ParseClientCertP12(data []byte, password string) (*ClientCert, error) {
	key, leaf, chain, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		if errors.Is(err, pkcs12.ErrIncorrectPassword) {
			return nil, errors.New("the PKCS#12 password is wrong")
		}
		return nil, fmt.Errorf("read PKCS#12: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("read PKCS#12 key: %w", err)
	}
	var b bytes.Buffer
	for _, c := range append([]*x509.Certificate{leaf}, chain...) {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	_ = pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return parseBlob(b.String())
}

// parseBlob checks a stored PEM text: certificates, then the key.
func parseBlob(blob string) (*ClientCert, error) {
	pair, err := tls.X509KeyPair([]byte(blob), []byte(blob))
	if err != nil {
		if strings.Contains(err.Error(), "does not match") {
			return nil, errors.New("the private key does not belong to the certificate (their public keys differ); give the key that was made with this certificate")
		}
		return nil, fmt.Errorf("read certificate and key: %w", err)
	}
	return &ClientCert{PEM: blob, Leaf: pair.Leaf}, nil
}

// StoredClientCert reads the certificate stored for an upstream.
func StoredClientCert(s Secrets, upstream string) (*ClientCert, error) {
	blob, err := s.Get(CertName(upstream))
	if err != nil {
		return nil, err
	}
	return parseBlob(blob)
}

// ClientCertificate gives the forwarder the certificate to present to an
// upstream in the TLS handshake.
func (c *Credentials) ClientCertificate(upstream string) (*tls.Certificate, error) {
	blob, err := c.Get(CertName(upstream))
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("no client certificate for upstream %q in the keychain; import one with `gatehouse cert import %s --cert FILE --key FILE`", upstream, upstream)
	}
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair([]byte(blob), []byte(blob))
	if err != nil {
		return nil, fmt.Errorf("the client certificate of upstream %q is damaged in the keychain (%v); import it again", upstream, err)
	}
	return &pair, nil
}
