package proxy

import (
	"errors"
	"fmt"
	"os"
)

// Credential is one secret for an upstream. Label names it in logs and the
// request log; Secret is never printed.
type Credential struct {
	Label  string
	Secret string
}

// Credentials finds the secret to present to an upstream. The keystore
// plugs in here; EnvCredentials is the source that needs no keychain.
type Credentials interface {
	Credential(up *Upstream) (Credential, error)
}

// ErrNoCredential means no usable key exists for an upstream; the wrapping
// error says how to add one.
var ErrNoCredential = errors.New("no key")

// EnvCredentials takes an upstream's key from the environment variable
// named by its key_env.
type EnvCredentials struct {
	// LookupEnv defaults to os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// Credential implements Credentials.
func (e EnvCredentials) Credential(up *Upstream) (Credential, error) {
	lookup := e.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	if up.KeyEnv == "" {
		return Credential{}, fmt.Errorf("%w for upstream %q: add one with `gatehouse key add %s` (it reads the key from stdin), or set key_env = \"VARIABLE\" on it in the config and export that variable", ErrNoCredential, up.Name, up.Name)
	}
	v, ok := lookup(up.KeyEnv)
	if !ok || v == "" {
		return Credential{}, fmt.Errorf("%w for upstream %q: the environment variable %s is empty; export it before starting Gatehouse, or add a key with `gatehouse key add %s`", ErrNoCredential, up.Name, up.KeyEnv, up.Name)
	}
	return Credential{Label: "env:" + up.KeyEnv, Secret: v}, nil
}
