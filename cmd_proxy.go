package main

import (
	"fmt"

	"github.com/gatehouse-app/gatehouse/setup"
)

func (c *cli) proxyPassword(args []string) error {
	return c.subcommand("proxy-password", args, map[string]func([]string) error{
		"set": c.proxyPasswordSet, "rm": c.proxyPasswordRm,
	})
}

// proxyArg parses the URL argument of a proxy-password subcommand.
func (c *cli) proxyArg(sub string, args []string) (rawURL, cfgPath string, err error) {
	fs, cfg := c.flags("proxy-password " + sub)
	pos, err := c.parse(fs, cfg, args, 1, "URL")
	if err != nil {
		return "", "", err
	}
	return pos[0], *cfg, nil
}

func (c *cli) proxyPasswordSet(args []string) error {
	raw, cfgPath, err := c.proxyArg("set", args)
	if err != nil {
		return err
	}
	name, err := setup.ProxyUserHost(raw)
	if err != nil {
		return err
	}
	pw, err := c.readSecret("Password for "+name+" (input is hidden): ", "printf %s \"$PASSWORD\" | gatehouse proxy-password set "+raw, false)
	if err != nil {
		return err
	}
	if _, err := c.setup(cfgPath).SetProxyPassword(raw, pw); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Stored the password of %s in the keychain.\n", name)
	return nil
}

func (c *cli) proxyPasswordRm(args []string) error {
	raw, cfgPath, err := c.proxyArg("rm", args)
	if err != nil {
		return err
	}
	name, err := c.setup(cfgPath).RemoveProxyPassword(raw)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Removed the password of %s.\n", name)
	return nil
}
