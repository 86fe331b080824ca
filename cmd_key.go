package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/gatehouse-app/gatehouse/keystore"
	"github.com/gatehouse-app/gatehouse/proxy"
	"github.com/gatehouse-app/gatehouse/setup"
)

// subcommand runs one of a command's subcommands.
func (c *cli) subcommand(name string, args []string, subs map[string]func([]string) error) error {
	if len(args) > 0 {
		if sub, ok := subs[args[0]]; ok {
			return sub(args[1:])
		}
	}
	names := make([]string, 0, len(subs))
	for n := range subs {
		names = append(names, n)
	}
	slices.Sort(names)
	fmt.Fprintf(c.stderr, "gatehouse: %s needs one of: %s; see gatehouse help\n", name, strings.Join(names, ", "))
	return errUsage
}

func (c *cli) key(args []string) error {
	return c.subcommand("key", args, map[string]func([]string) error{
		"add": c.keyAdd, "list": c.keyList, "rm": c.keyRm, "enable": c.keyEnable,
	})
}

// editConfig loads the config to change it; the upstream named must exist.
func editConfig(path, upstream string) (*proxy.Config, *proxy.Upstream, error) {
	cfg, err := proxy.LoadConfig(path)
	if err != nil {
		return nil, nil, err
	}
	up := cfg.Upstream(upstream)
	if up == nil {
		return nil, nil, fmt.Errorf("no upstream named %q in %s; add an [[upstreams]] entry with that name first", upstream, path)
	}
	return cfg, up, nil
}

func (c *cli) keyAdd(args []string) error {
	fs, cfgPath := c.flags("key add")
	label := fs.String("label", "default", "the key's label, to tell several keys of one upstream apart")
	pos, err := c.parse(fs, cfgPath, args, 1, "UPSTREAM")
	if err != nil {
		return err
	}
	if err := proxy.ValidateLabel(*label); err != nil {
		return err
	}
	if _, _, err := editConfig(*cfgPath, pos[0]); err != nil {
		return err
	}
	secret, err := c.readSecret(fmt.Sprintf("Key for upstream %s (input is hidden): ", pos[0]),
		fmt.Sprintf("printf %%s \"$KEY\" | gatehouse key add %s", pos[0]), false)
	if err != nil {
		return err
	}
	masked, err := c.setup(*cfgPath).AddKey(pos[0], *label, secret)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Stored key %q of upstream %q in the keychain (%s).\n", *label, pos[0], masked)
	return nil
}

// setup is the setup operations on the config at cfgPath and the keychain.
func (c *cli) setup(cfgPath string) *setup.Setup {
	return &setup.Setup{ConfigPath: cfgPath, Store: c.store}
}

func (c *cli) keyList(args []string) error {
	fs, cfgPath := c.flags("key list")
	listen := fs.String("listen", "", "where the forwarder listens, if serve was started with --listen")
	if _, err := c.parse(fs, cfgPath, args, 0, "no arguments"); err != nil {
		return err
	}
	cfg, err := proxy.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	secrets := keystore.Secrets{Store: c.store}
	states, running := keyStates(cfg)
	state := func(upstream, label string) string {
		if !running {
			return "-"
		}
		st, ok := states[upstream+"\x00"+label]
		switch {
		case !ok:
			return "-"
		case st.State == proxy.KeyCooling && !st.Until.IsZero():
			return "cooling until " + st.Until.Local().Format(time.TimeOnly) + " (" + st.Reason + ")"
		case st.State == proxy.KeyRejected:
			return "rejected (" + st.Reason + ")"
		case st.State == proxy.KeyExhausted && !st.Until.IsZero():
			return "exhausted until " + st.Until.Local().Format(time.DateTime) + " (" + st.Reason + ")"
		case st.State == proxy.KeyExhausted:
			return "exhausted (" + st.Reason + "; gatehouse key enable " + upstream + " " + label + " once topped up)"
		}
		return st.State
	}
	var unreachable error
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "UPSTREAM\tLABEL\tSOURCE\tKEY\tSTATE")
	for _, up := range cfg.Upstreams {
		for _, label := range up.Keys {
			shown := "missing: add it with gatehouse key add " + up.Name + " --label " + label
			switch v, err := secrets.Get(keystore.KeyName(up.Name, label)); {
			case err == nil:
				shown = keystore.Mask(v)
			case errors.Is(err, keystore.ErrUnavailable):
				shown, unreachable = "keychain unreachable", err
			case !errors.Is(err, keystore.ErrNotFound):
				shown = err.Error()
			}
			fmt.Fprintf(w, "%s\t%s\tkeychain\t%s\t%s\n", up.Name, label, shown, state(up.Name, label))
		}
		if up.KeyEnv != "" {
			shown := "not set"
			if v := os.Getenv(up.KeyEnv); v != "" {
				shown = keystore.Mask(v)
			}
			fmt.Fprintf(w, "%s\t%s\tenv\t%s\t%s\n", up.Name, "env:"+up.KeyEnv, shown, state(up.Name, "env:"+up.KeyEnv))
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if !running {
		fmt.Fprintln(c.stdout, "(The forwarder is not running at "+cfg.Listen+": key states are shown while it runs.)")
	}
	return unreachable
}

// keyStates asks the running forwarder for its keys' states: a 429 makes
// a key cool, a 401 rejects it. Without a running forwarder there are none.
func keyStates(cfg *proxy.Config) (map[string]proxy.KeyStatus, bool) {
	base, client := forwarderClient(cfg.Listen, 2*time.Second)
	res, err := client.Get(base + proxy.StatusPath)
	if err != nil {
		return nil, false
	}
	defer res.Body.Close()
	var st proxy.FullStatus
	if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&st) != nil {
		return nil, false
	}
	out := map[string]proxy.KeyStatus{}
	for _, k := range st.Keys {
		out[k.Upstream+"\x00"+k.Label] = k
	}
	return out, true
}

// forwarderClient is how a command reaches the running forwarder at
// listen: never through an HTTP proxy from the environment, and at the
// loopback address when it listens on every address.
func forwarderClient(listen string, timeout time.Duration) (string, *http.Client) {
	return setup.LoopbackURL(listen), &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: nil}}
}

// keyEnable puts a rejected (or cooling) key back into use in the running
// forwarder, through proxy.KeyEnablePath on its listen address. Key states
// live only in the running forwarder: without one, no key is rejected.
func (c *cli) keyEnable(args []string) error {
	fs, cfgPath := c.flags("key enable")
	listen := fs.String("listen", "", "where the forwarder listens, if serve was started with --listen")
	pos, err := c.parse(fs, cfgPath, args, 2, "UPSTREAM LABEL")
	if err != nil {
		return err
	}
	cfg, up, err := editConfig(*cfgPath, pos[0])
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	label := pos[1]
	if !slices.Contains(up.Keys, label) && (up.KeyEnv == "" || label != "env:"+up.KeyEnv) {
		return fmt.Errorf("upstream %q has no key labelled %q; see gatehouse key list", up.Name, label)
	}
	body, _ := json.Marshal(proxy.KeyRef{Upstream: up.Name, Label: label})
	base, client := forwarderClient(cfg.Listen, 5*time.Second)
	res, err := client.Post(base+proxy.KeyEnablePath, "application/json", bytes.NewReader(body))
	if errors.Is(err, syscall.ECONNREFUSED) {
		fmt.Fprintf(c.stdout, "The forwarder is not running at %s; key states last only while it runs, so no key is rejected.\n", cfg.Listen)
		return nil
	}
	if err != nil {
		return fmt.Errorf("could not reach the forwarder at %s (if serve runs with --listen, pass the same --listen here): %w", cfg.Listen, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Message string }
		}
		if json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&e) != nil || e.Error.Message == "" {
			e.Error.Message = res.Status
		}
		return fmt.Errorf("the forwarder at %s refused: %s", cfg.Listen, e.Error.Message)
	}
	fmt.Fprintf(c.stdout, "Key %q of upstream %q is in use again.\n", label, up.Name)
	return nil
}

func (c *cli) keyRm(args []string) error {
	fs, cfgPath := c.flags("key rm")
	pos, err := c.parse(fs, cfgPath, args, 2, "UPSTREAM LABEL")
	if err != nil {
		return err
	}
	if err := c.setup(*cfgPath).RemoveKey(pos[0], pos[1]); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Removed key %q of upstream %q.\n", pos[1], pos[0])
	return nil
}

// maxSecretInput bounds what is read from stdin for one secret.
const maxSecretInput = 1 << 20

// readSecret reads a secret from the terminal without echo, or from piped
// stdin; surrounding white space (a trailing newline) is dropped. Unless
// allowEmpty, an empty secret is an error whose hint is pipeHint.
func (c *cli) readSecret(prompt, pipeHint string, allowEmpty bool) (string, error) {
	var raw []byte
	if f, ok := c.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(c.stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(c.stderr)
		if err != nil {
			return "", fmt.Errorf("read from the terminal: %w", err)
		}
		raw = b
	} else {
		b, err := io.ReadAll(io.LimitReader(c.stdin, maxSecretInput))
		if err != nil {
			return "", fmt.Errorf("read stdin: %w", err)
		}
		raw = b
	}
	s := strings.TrimSpace(string(raw))
	if s == "" && !allowEmpty {
		return "", fmt.Errorf("nothing was read from stdin; type it when asked, or pipe it in: %s", pipeHint)
	}
	return s, nil
}
