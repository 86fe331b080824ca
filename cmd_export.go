package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/term"
)

// export writes the config and every secret it names into one file
// encrypted with a passphrase, to move a setup to another machine.
func (c *cli) export(args []string) error {
	set, cfgPath := c.flags("export")
	out := set.String("out", "", "the file to write (it is encrypted with your passphrase)")
	if _, err := c.parse(set, cfgPath, args, 0, "--out FILE"); err != nil {
		return err
	}
	if *out == "" {
		fmt.Fprintln(c.stderr, "gatehouse: export needs --out FILE")
		return errUsage
	}
	pass, err := c.readPassphrase(true)
	if err != nil {
		return err
	}
	found, missing, err := c.setup(*cfgPath).Export(*out, pass)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Exported the config and %d secrets to %s, encrypted with your passphrase.\n", len(found), *out)
	if len(missing) > 0 {
		fmt.Fprintf(c.stderr, "gatehouse: warning: the config names these, but the keychain does not hold them: %s\n", strings.Join(missing, ", "))
	}
	return nil
}

// import_ restores an export into this machine's keychain and config.
func (c *cli) import_(args []string) error {
	set, cfgPath := c.flags("import")
	pos, err := c.parse(set, cfgPath, args, 1, "FILE")
	if err != nil {
		return err
	}
	pass, err := c.readPassphrase(false)
	if err != nil {
		return err
	}
	done, err := c.setup(*cfgPath).Import(pos[0], pass)
	if err != nil {
		return err
	}
	if done.ConfigExisted {
		fmt.Fprintf(c.stdout, "Replaced the config at %s.\n", *cfgPath)
	} else {
		fmt.Fprintf(c.stdout, "Wrote the config to %s.\n", *cfgPath)
	}
	replaced, added := done.Replaced, done.Added
	fmt.Fprintf(c.stdout, "Keychain: %d added, %d replaced.\n", len(added), len(replaced))
	for _, name := range replaced {
		fmt.Fprintf(c.stdout, "  replaced %s\n", name)
	}
	return nil
}

// readPassphrase asks on the terminal (twice when confirm) or reads one
// line from piped stdin.
func (c *cli) readPassphrase(confirm bool) (string, error) {
	if f, ok := c.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) && confirm {
		first, err := c.readSecret("Passphrase (input is hidden): ", "", false)
		if err != nil {
			return "", err
		}
		again, err := c.readSecret("The same passphrase again: ", "", false)
		if err != nil {
			return "", err
		}
		if first != again {
			return "", errors.New("the two passphrases differ; nothing was written")
		}
		return first, nil
	}
	return c.readSecret("Passphrase (input is hidden): ", "printf %s \"$PASSPHRASE\" | gatehouse export --out FILE", false)
}
