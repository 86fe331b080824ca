package main

import (
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

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
	if err := proxy.ValidateLabel(name); err != nil {
		return fmt.Errorf("token name: %w", err)
	}
	cfg, err := proxy.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(cfg.Tokens, func(t proxy.Token) bool { return t.Name == name }) {
		return fmt.Errorf("a token named %q exists; remove it first with `gatehouse token rm %s`, or choose another name", name, name)
	}
	tok, hash, err := proxy.NewToken()
	if err != nil {
		return err
	}
	cfg.Tokens = append(cfg.Tokens, proxy.Token{Name: name, SHA256: hash, Created: time.Now().UTC().Format(time.RFC3339)})
	if err := proxy.SaveConfig(*cfgPath, cfg); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, tok)
	fmt.Fprintf(c.stderr, "Token %q made. It is shown only this once: give it to the client as its API key.\n", name)
	if len(cfg.Tokens) == 1 {
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
	cfg, err := proxy.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(cfg.Tokens, func(t proxy.Token) bool { return t.Name == pos[0] })
	if i < 0 {
		return fmt.Errorf("no token named %q; see gatehouse token list", pos[0])
	}
	cfg.Tokens = slices.Delete(cfg.Tokens, i, i+1)
	if err := proxy.SaveConfig(*cfgPath, cfg); err != nil {
		return fmt.Errorf("%w; the last token cannot go while listen shares the forwarder with the network", err)
	}
	fmt.Fprintf(c.stdout, "Removed token %q.\n", pos[0])
	return nil
}
