package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/gatehouse-app/gatehouse/proxy"
)

func (c *cli) token(args []string) error {
	return c.subcommand("token", args, map[string]func([]string) error{
		"add": c.tokenAdd, "list": c.tokenList, "rm": c.tokenRm,
	})
}

// tokenAdd makes a token, prints it once, and keeps only its hash.
func (c *cli) tokenAdd(args []string) error {
	fs, cfgPath := c.flags("token add")
	pos, err := c.parse(fs, cfgPath, args, 1, "NAME")
	if err != nil {
		return err
	}
	name := pos[0]
	tok, first, err := c.setup(*cfgPath).AddToken(name)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, tok)
	fmt.Fprintf(c.stderr, "Token %q made. It is shown only this once: give it to the client as its API key.\n", name)
	if first {
		fmt.Fprintln(c.stderr, "From now on every client needs a token, on loopback too.")
	}
	return nil
}

func (c *cli) tokenList(args []string) error {
	fs, cfgPath := c.flags("token list")
	if _, err := c.parse(fs, cfgPath, args, 0, "no arguments"); err != nil {
		return err
	}
	cfg, err := proxy.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if len(cfg.Tokens) == 0 {
		fmt.Fprintln(c.stdout, "No access tokens: loopback clients need none. Add one with `gatehouse token add NAME`.")
		return nil
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tCREATED")
	for _, t := range cfg.Tokens {
		fmt.Fprintf(w, "%s\t%s\n", t.Name, t.Created)
	}
	return w.Flush()
}

func (c *cli) tokenRm(args []string) error {
	fs, cfgPath := c.flags("token rm")
	pos, err := c.parse(fs, cfgPath, args, 1, "NAME")
	if err != nil {
		return err
	}
	if err := c.setup(*cfgPath).RemoveToken(pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Removed token %q.\n", pos[0])
	return nil
}
