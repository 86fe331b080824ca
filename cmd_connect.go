package main

import (
	"bufio"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-app/gatehouse/connect"
	"github.com/gatehouse-app/gatehouse/proxy"
)

// connect points a tool at this Gatehouse; the connect package does the
// work, this only reads flags, asks and prints.
func (c *cli) connect(args []string) error {
	fs, cfgPath := c.flags("connect")
	model := fs.String("model", "", "the model the tool selects: any model the forwarder routes (default: the tool's own)")
	yes := fs.Bool("yes", false, "write without asking")
	undo := fs.Bool("undo", false, "put the tool's file back as it was before connect, and revoke its token")
	list := fs.Bool("list", false, "show each tool: found, connected here, connected elsewhere or not found")
	nargs := 1
	if slices.ContainsFunc(args, func(a string) bool { return a == "--list" || a == "-list" }) {
		nargs = 0
	}
	pos, err := c.parse(fs, cfgPath, args, nargs, "TOOL, or --list")
	if err != nil {
		return err
	}
	cfg, err := proxy.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	base, _ := forwarderClient(cfg.Listen, time.Second)
	stateDir := filepath.Join(filepath.Dir(*cfgPath), "connect")
	if *list {
		return c.connectList(base)
	}
	tool, err := connect.Lookup(pos[0])
	if err != nil {
		return err
	}
	if *undo {
		return c.connectUndo(tool, *cfgPath, cfg, stateDir)
	}
	return c.connectTool(tool, *cfgPath, cfg, stateDir, connect.Target{BaseURL: base, Token: connect.Placeholder, Model: *model}, *yes)
}

func (c *cli) connectList(base string) error {
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TOOL\tSTATE\tSETTINGS")
	for _, t := range connect.Tools() {
		st := t.Status(base)
		state := st.State.String()
		if st.State == connect.ConnectedElsewhere {
			state += " (" + st.BaseURL + ")"
		}
		where := st.Path
		if t.InIDE() {
			where = "inside the IDE"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", t.Name, state, where)
	}
	return w.Flush()
}

// modelsServed lists the upstreams' model patterns, for messages.
func modelsServed(cfg *proxy.Config) string {
	var pats []string
	for _, u := range cfg.Upstreams {
		pats = append(pats, u.Models...)
	}
	if len(pats) == 0 {
		return "none: no upstream lists models"
	}
	return strings.Join(pats, ", ")
}

func (c *cli) connectTool(tool *connect.Tool, cfgPath string, cfg *proxy.Config, stateDir string, tg connect.Target, yes bool) error {
	if tg.Model != "" && !cfg.Routes(tg.Model) {
		return fmt.Errorf("no upstream serves model %q (the upstreams' models: %s); choose one they serve, or add it to an upstream's models", tg.Model, modelsServed(cfg))
	}
	if tg.Model == "" && !cfg.Routes(tool.DefaultModel) {
		fmt.Fprintf(c.stderr, "Warning: %s uses %s unless told otherwise, and no upstream serves it (the upstreams' models: %s); pass --model with one they serve.\n",
			tool.Title, tool.DefaultModel, modelsServed(cfg))
	}

	// With local tokens on, the tool gets a token of its own, named after
	// it; a token it already holds (from an earlier connect) is kept.
	var made *proxy.Token
	var replaced string
	if len(cfg.Tokens) > 0 {
		recorded := tool.RecordedToken(stateDir)
		held := tokenNamed(cfg, recorded)
		switch cur := tool.CurrentToken(); {
		case held != nil && cur != "" && proxy.HashToken(cur) == held.SHA256:
			tg.Token, tg.TokenName = cur, recorded
		case held != nil && !tool.TokenInFile():
			tg.TokenName = recorded // typed in by hand when it was made
		default:
			name := tool.Name
			if recorded != "" && held != nil {
				name, replaced = recorded, recorded
			}
			for i := 2; replaced == "" && tokenNamed(cfg, name) != nil; i++ {
				name = fmt.Sprintf("%s-%d", tool.Name, i)
			}
			tok, hash, err := proxy.NewToken()
			if err != nil {
				return err
			}
			made = &proxy.Token{Name: name, SHA256: hash, Created: time.Now().UTC().Format(time.RFC3339)}
			tg.Token, tg.TokenName = tok, name
		}
	}

	plan, err := tool.Plan(stateDir, tg)
	if err != nil {
		return err
	}
	if tool.InIDE() {
		fmt.Fprintf(c.stdout, "%s keeps its settings inside the IDE. Fill in:\n", tool.Title)
		w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		for _, f := range tool.Fields(tg) {
			v := f.Value
			if f.Secret && made == nil && tg.TokenName != "" {
				v = fmt.Sprintf("the token %q, shown when it was made", tg.TokenName)
			}
			fmt.Fprintf(w, "  %s:\t%s\n", f.Label, v)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	} else if !plan.Changed {
		fmt.Fprintf(c.stdout, "%s already points at Gatehouse (%s): nothing to change.\n", tool.Title, plan.Path)
		return nil
	} else {
		fmt.Fprint(c.stdout, plan.Diff)
		if !yes && !c.confirm(fmt.Sprintf("Write %s? [y/N] ", plan.Path)) {
			fmt.Fprintln(c.stdout, "Nothing written.")
			return nil
		}
	}

	before := slices.Clone(cfg.Tokens)
	if made != nil {
		if err := saveTokens(cfgPath, cfg, replaced, made); err != nil {
			return err
		}
	}
	if err := plan.Apply(); err != nil {
		if made != nil {
			cfg.Tokens = before // the file was not written: the tokens stay as they were
			_ = proxy.SaveConfig(cfgPath, cfg)
		}
		return err
	}
	if !tool.InIDE() {
		fmt.Fprintf(c.stdout, "Connected %s: %s points at %s. Undo with `gatehouse connect --undo %s`.\n", tool.Title, plan.Path, tg.BaseURL, tool.Name)
	}
	if made != nil {
		fmt.Fprintf(c.stderr, "Made the access token %q for %s.\n", made.Name, tool.Title)
	}
	if tool.Name == "zed" {
		key := "any value, for instance " + connect.Placeholder
		switch {
		case made != nil:
			key = "this token (shown only this once): " + tg.Token
		case tg.TokenName != "":
			key = fmt.Sprintf("the token %q, shown when it was made", tg.TokenName)
		}
		fmt.Fprintf(c.stdout, "Zed keeps API keys in the system keychain: in its agent settings, enter as the OpenAI API key %s\n", key)
	}
	return nil
}

func tokenNamed(cfg *proxy.Config, name string) *proxy.Token {
	if name == "" {
		return nil
	}
	i := slices.IndexFunc(cfg.Tokens, func(t proxy.Token) bool { return t.Name == name })
	if i < 0 {
		return nil
	}
	return &cfg.Tokens[i]
}

// saveTokens removes the token named drop (if any), adds add (if any) and
// saves the config, as `gatehouse token` does.
func saveTokens(cfgPath string, cfg *proxy.Config, drop string, add *proxy.Token) error {
	cfg.Tokens = slices.DeleteFunc(cfg.Tokens, func(t proxy.Token) bool { return drop != "" && t.Name == drop })
	if add != nil {
		cfg.Tokens = append(cfg.Tokens, *add)
	}
	return proxy.SaveConfig(cfgPath, cfg)
}

// confirm asks a yes/no question on stderr and reads the answer from stdin.
func (c *cli) confirm(question string) bool {
	fmt.Fprint(c.stderr, question)
	line, _ := bufio.NewReader(c.stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

func (c *cli) connectUndo(tool *connect.Tool, cfgPath string, cfg *proxy.Config, stateDir string) error {
	u, err := tool.Undo(stateDir)
	if errors.Is(err, connect.ErrNotConnected) {
		return fmt.Errorf("%s was not connected with `gatehouse connect` (or was undone already): nothing to undo", tool.Title)
	}
	if err != nil {
		return err
	}
	switch {
	case u.Path == "":
		fmt.Fprintf(c.stdout, "%s keeps its settings inside the IDE: clear them there.\n", tool.Title)
	case u.Removed:
		fmt.Fprintf(c.stdout, "Removed %s, which connect had made.\n", u.Path)
	default:
		fmt.Fprintf(c.stdout, "Put back %s as it was.\n", u.Path)
	}
	if u.Token != "" && tokenNamed(cfg, u.Token) != nil {
		if err := saveTokens(cfgPath, cfg, u.Token, nil); err != nil {
			return fmt.Errorf("revoke the token %q: %w", u.Token, err)
		}
		fmt.Fprintf(c.stdout, "Revoked the token %q.\n", u.Token)
	}
	return nil
}
