// Package setup holds the setup operations that the commands and the
// desktop window share, so that nothing about setup is written twice: each
// changes the keychain, the config file or another tool's files, with the
// same rules whether a command or a button calls it. It never prints and
// never asks: the caller shows what it returns.
package setup

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-app/gatehouse/connect"
	"github.com/gatehouse-app/gatehouse/proxy"
)

// ConnectStateDir is where connect keeps the tools' original files and its
// records: a folder beside the config file.
func ConnectStateDir(cfgPath string) string {
	return filepath.Join(filepath.Dir(cfgPath), "connect")
}

// Connection is a connect that is ready to be written: show Plan.Diff (or,
// for a tool that keeps its settings in the IDE, Fields), ask, then Apply.
type Connection struct {
	Tool   *connect.Tool
	Plan   *connect.Plan
	Target connect.Target
	// Warning, when not empty, says that no upstream serves the model the
	// tool uses unless told otherwise.
	Warning string
	// NewToken is the local access token made for the tool, shown once
	// after Apply; "" when none was made (tokens off, or the tool holds one).
	NewToken string

	// EditConfig, if set, makes the token change in the config: the desktop
	// app passes its running service's Edit, which serialises config edits.
	// When nil, the file is read, changed and saved.
	EditConfig func(change func(*proxy.Config) error) error

	cfgPath  string
	made     *proxy.Token
	replaced string
}

// Changed reports whether Apply has anything to do: the tool's file
// changes, or a new token must be saved (and shown) though the file stays
// as it is (Zed keeps its key elsewhere).
func (c *Connection) Changed() bool { return c.Plan.Changed || c.NewToken != "" || c.Tool.InIDE() }

// editConfig applies change to the config, through EditConfig when set.
func (c *Connection) editConfig(change func(*proxy.Config) error) error {
	return (&Setup{ConfigPath: c.cfgPath, EditConfig: c.EditConfig}).Edit(change)
}

// ModelsServed lists the upstreams' model patterns, for messages.
func ModelsServed(cfg *proxy.Config) string {
	var pats []string
	for _, u := range cfg.Upstreams {
		pats = append(pats, u.Models...)
	}
	if len(pats) == 0 {
		return "none: no upstream lists models"
	}
	return strings.Join(pats, ", ")
}

// BaseURL is where the tools reach the forwarder of cfg.
func BaseURL(cfg *proxy.Config) string { return LoopbackURL(cfg.Listen) }

// LoopbackURL is http://listen, with a wildcard host (every address) made
// the loopback address: what a program on this machine dials.
func LoopbackURL(listen string) string {
	if host, port, err := net.SplitHostPort(listen); err == nil {
		switch ip := net.ParseIP(host); {
		case host == "", ip != nil && ip.IsUnspecified() && ip.To4() != nil:
			listen = net.JoinHostPort("127.0.0.1", port)
		case ip != nil && ip.IsUnspecified():
			listen = net.JoinHostPort("::1", port)
		}
	}
	return "http://" + listen
}

// PrepareConnect plans pointing tool at the Gatehouse of the config at
// cfgPath, reached at baseURL (when "", the config's listen address: the
// desktop app passes the address it listens on), with model (or the
// tool's own default when ""). Nothing is
// written until Apply. With local tokens on, the tool gets a token of its
// own, named after it; a token it already holds (from an earlier connect)
// is kept.
func PrepareConnect(cfgPath, baseURL string, tool *connect.Tool, model string) (*Connection, error) {
	cfg, err := proxy.LoadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	if baseURL == "" {
		baseURL = BaseURL(cfg)
	}
	c := &Connection{Tool: tool, cfgPath: cfgPath, Target: connect.Target{BaseURL: baseURL, Token: connect.Placeholder, Model: model}}
	if model != "" && !cfg.Routes(model) {
		return nil, fmt.Errorf("no upstream serves model %q (the upstreams' models: %s); choose one they serve, or add it to an upstream's models", model, ModelsServed(cfg))
	}
	if model == "" && !cfg.Routes(tool.DefaultModel) {
		c.Warning = fmt.Sprintf("%s uses %s unless told otherwise, and no upstream serves it (the upstreams' models: %s); choose a model they serve.",
			tool.Title, tool.DefaultModel, ModelsServed(cfg))
	}
	stateDir := ConnectStateDir(cfgPath)
	if len(cfg.Tokens) > 0 {
		recorded := tool.RecordedToken(stateDir)
		held := tokenNamed(cfg, recorded)
		switch cur := tool.CurrentToken(); {
		case held != nil && cur != "" && proxy.HashToken(cur) == held.SHA256:
			c.Target.Token, c.Target.TokenName = cur, recorded
		case held != nil && !tool.TokenInFile():
			c.Target.TokenName = recorded // typed in by hand when it was made
		default:
			name := tool.Name
			if recorded != "" && held != nil {
				name, c.replaced = recorded, recorded
			}
			for i := 2; c.replaced == "" && tokenNamed(cfg, name) != nil; i++ {
				name = fmt.Sprintf("%s-%d", tool.Name, i)
			}
			tok, hash, err := proxy.NewToken()
			if err != nil {
				return nil, err
			}
			c.made = &proxy.Token{Name: name, SHA256: hash, Created: time.Now().UTC().Format(time.RFC3339)}
			c.Target.Token, c.Target.TokenName, c.NewToken = tok, name, tok
		}
	}
	if c.Plan, err = tool.Plan(stateDir, c.Target); err != nil {
		return nil, err
	}
	return c, nil
}

// Apply saves the tool's token (if one was made) and writes the tool's
// file. When the file cannot be written, the config's tokens go back as
// they were.
func (c *Connection) Apply() error {
	if c.made != nil {
		if err := c.editConfig(func(cfg *proxy.Config) error { swapToken(cfg, c.replaced, c.made); return nil }); err != nil {
			return fmt.Errorf("save the token: %w", err)
		}
	}
	if err := c.Plan.Apply(); err != nil {
		if c.made != nil { // the file was not written: the new token goes again
			rb := c.editConfig(func(cfg *proxy.Config) error { swapToken(cfg, c.made.Name, nil); return nil })
			if rb != nil {
				return fmt.Errorf("%w; and the token %q made for it could not be removed again (%v): remove it with gatehouse token rm %s", err, c.made.Name, rb, c.made.Name)
			}
		}
		return err
	}
	return nil
}

// Disconnection is what UndoConnect did.
type Disconnection struct {
	connect.Undone
	Revoked string // the token revoked with it, or ""
}

// UndoConnect puts the tool's file back as it was before connect (or
// removes the file connect made), and revokes the token connect made for it.
func UndoConnect(cfgPath string, tool *connect.Tool) (Disconnection, error) {
	u, err := tool.Undo(ConnectStateDir(cfgPath))
	if errors.Is(err, connect.ErrNotConnected) {
		return Disconnection{}, fmt.Errorf("%s was not connected with `gatehouse connect` (or was undone already): nothing to undo", tool.Title)
	}
	if err != nil {
		return Disconnection{}, err
	}
	d := Disconnection{Undone: u}
	if u.Token == "" {
		return d, nil
	}
	cfg, err := proxy.LoadConfig(cfgPath)
	if err == nil && tokenNamed(cfg, u.Token) != nil {
		swapToken(cfg, u.Token, nil)
		if err = proxy.SaveConfig(cfgPath, cfg); err == nil {
			d.Revoked = u.Token
		}
	}
	if err != nil {
		return d, fmt.Errorf("revoke the token %q: %w; remove it with gatehouse token rm %s", u.Token, err, u.Token)
	}
	return d, nil
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

// swapToken removes the token named drop (if any) and adds add (if any).
func swapToken(cfg *proxy.Config, drop string, add *proxy.Token) {
	cfg.Tokens = slices.DeleteFunc(cfg.Tokens, func(t proxy.Token) bool { return drop != "" && t.Name == drop })
	if add != nil {
		cfg.Tokens = append(cfg.Tokens, *add)
	}
}
