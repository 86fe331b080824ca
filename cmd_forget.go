package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/gatehouse-app/gatehouse/keystore"
)

// forgetSecrets deletes every secret Gatehouse keeps in the keychain —
// upstream keys, HMAC secrets, client certificates, proxy passwords —
// whatever config named them. The Windows uninstaller runs it when the
// user chooses to remove the keys from Credential Manager; the config file
// (labels and token hashes) is left alone.
func (c *cli) forgetSecrets(args []string) error {
	fs, _ := c.flags("forget-secrets")
	yes := fs.Bool("yes", false, "really delete them (they cannot be recovered)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(c.stderr, "gatehouse: forget-secrets takes no arguments; see gatehouse help")
		return errUsage
	}
	if !*yes {
		fmt.Fprintln(c.stderr, "gatehouse: forget-secrets deletes every key, certificate and password Gatehouse keeps in the keychain, for good; run it with --yes to do it")
		return errUsage
	}
	all, ok := c.store.(interface{ DeleteAll() error })
	if !ok {
		return errors.New("this keychain cannot delete all of Gatehouse's entries at once")
	}
	if err := all.DeleteAll(); err != nil {
		return fmt.Errorf("delete the secrets: %w", err)
	}
	fmt.Fprintf(c.stdout, "Deleted every secret Gatehouse kept in the keychain (service %q).\n", keystore.Service)
	return nil
}
