package main

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/gatehouse-app/gatehouse/keystore"
)

func (c *cli) proxyPassword(args []string) error {
	return c.subcommand("proxy-password", args, map[string]func([]string) error{
		"set": c.proxyPasswordSet, "rm": c.proxyPasswordRm,
	})
}

// proxyUserHost reads "scheme://user@host:port" and returns "user@host:port",
// the name its password is stored under.
func proxyUserHost(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil || u.User.Username() == "" || u.Host == "" {
		return "", fmt.Errorf("%q is not a proxy URL with a user name; write it as in the config, such as socks5://me@127.0.0.1:1080", raw)
	}
	if _, has := u.User.Password(); has {
		return "", errors.New("give the URL without the password; the password is read from stdin")
	}
	return u.User.Username() + "@" + u.Host, nil
}

// proxyArg parses the URL argument of a proxy-password subcommand.
func (c *cli) proxyArg(sub string, args []string) (rawURL, userHost string, err error) {
	fs, cfgPath := c.flags("proxy-password " + sub)
	pos, err := c.parse(fs, cfgPath, args, 1, "URL")
	if err != nil {
		return "", "", err
	}
	userHost, err = proxyUserHost(pos[0])
	return pos[0], userHost, err
}

func (c *cli) proxyPasswordSet(args []string) error {
	raw, name, err := c.proxyArg("set", args)
	if err != nil {
		return err
	}
	pw, err := c.readSecret("Password for "+name+" (input is hidden): ", "printf %s \"$PASSWORD\" | gatehouse proxy-password set "+raw, false)
	if err != nil {
		return err
	}
	if err := (keystore.Secrets{Store: c.store}).Set(keystore.ProxyName(name), pw); err != nil {
		return fmt.Errorf("store the password: %w", err)
	}
	fmt.Fprintf(c.stdout, "Stored the password of %s in the keychain.\n", name)
	return nil
}

func (c *cli) proxyPasswordRm(args []string) error {
	_, name, err := c.proxyArg("rm", args)
	if err != nil {
		return err
	}
	if err := (keystore.Secrets{Store: c.store}).Delete(keystore.ProxyName(name)); err != nil {
		if errors.Is(err, keystore.ErrNotFound) {
			return fmt.Errorf("no password for %s is stored", name)
		}
		return fmt.Errorf("delete the password: %w", err)
	}
	fmt.Fprintf(c.stdout, "Removed the password of %s.\n", name)
	return nil
}
