// Package connect writes other tools' config files so that they reach
// Gatehouse: Claude Code, Codex CLI, Continue, Zed, Aider and opencode keep
// their settings in files it edits in place; Cline, Roo Code and JetBrains
// keep them inside the IDE, so it only lists the fields to fill.
//
// Every edit keeps the rest of the file (settings, comments, key order,
// permissions), is shown as a diff before it is written, is written
// atomically, and keeps the original in a state folder so that Undo puts
// it back byte for byte. The package knows nothing of the forwarder: the
// caller passes the base URL, the token and the model. The command
// `gatehouse connect` and the desktop window both use it.
package connect

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Placeholder is the API key written when the forwarder needs no token:
// tools insist on some value, and Gatehouse drops it.
const Placeholder = "gatehouse"

// State is how a tool stands towards this Gatehouse.
type State int

const (
	NotFound           State = iota // neither its config folder nor its binary
	Found                           // installed, not pointed at any Gatehouse
	ConnectedHere                   // its settings point at this base URL
	ConnectedElsewhere              // its Gatehouse settings point at another base URL
)

func (s State) String() string {
	return [...]string{"not found", "found", "connected here", "connected elsewhere"}[s]
}

// Status is a tool's state, the file it would write (empty for tools that
// keep their settings inside the IDE) and the base URL found there.
type Status struct {
	State   State
	Path    string
	BaseURL string
}

// Target is what a tool is pointed at.
type Target struct {
	// BaseURL is the forwarder's root, such as http://127.0.0.1:4747,
	// without /v1: each tool adds what it needs.
	BaseURL string
	// Token is the local access token, or Placeholder when none is needed.
	Token string
	// TokenName is the name of the token connect made for this tool (kept
	// so that Undo can say which token to revoke); empty when none.
	TokenName string
	// Model is the model to select; empty keeps the tool's own default.
	Model string
}

func (t Target) v1() string { return strings.TrimRight(t.BaseURL, "/") + "/v1" }

// Field is one setting to fill by hand in an IDE.
type Field struct {
	Label, Value string
	Secret       bool // the API key field, which holds the token when tokens are on
}

// Tool is one tool Gatehouse can connect.
type Tool struct {
	Name  string // the command's argument: claude-code, codex, …
	Title string // for people: Claude Code, Codex CLI, …
	// DefaultModel is the model the tool uses when none is set, as far as
	// Gatehouse knows; without --model the caller warns when no upstream
	// serves it.
	DefaultModel string
	// Format names the file's syntax (json, toml, yaml); empty for tools
	// whose settings live inside the IDE.
	Format string

	path    func() (string, error) // the config file
	dirs    func() []string        // folders whose presence means installed
	binary  string                 // on PATH means installed
	edit    func(old []byte, t Target) ([]byte, error)
	read    func(data []byte) (current, error)
	fields  func(t Target) []Field
	fileErr func(data []byte) error // checks that a file parses; nil error if it does
}

// current is what a tool's file says about Gatehouse.
type current struct {
	baseURL string // the Gatehouse base URL written there, without /v1
	token   string
}

// InIDE reports whether the tool keeps its settings inside the IDE: then
// Fields lists them and no file is written.
func (t *Tool) InIDE() bool { return t.fields != nil }

// Fields are the settings to fill by hand for a tool that keeps them
// inside the IDE; nil for the others.
func (t *Tool) Fields(tg Target) []Field {
	if t.fields == nil {
		return nil
	}
	return t.fields(tg)
}

// Path is the tool's config file here, honouring its override variable.
func (t *Tool) Path() (string, error) {
	if t.path == nil {
		return "", nil
	}
	return t.path()
}

// Lookup finds a tool by its Name.
func Lookup(name string) (*Tool, error) {
	for _, t := range Tools() {
		if t.Name == name {
			return t, nil
		}
	}
	return nil, fmt.Errorf("no tool named %q; choose one of: %s", name, strings.Join(names(), ", "))
}

// Status says whether the tool is installed and where it points.
func (t *Tool) Status(baseURL string) Status {
	var st Status
	st.Path, _ = t.Path()
	if t.path != nil {
		if data, err := os.ReadFile(st.Path); err == nil {
			if cur, err := t.read(data); err == nil && cur.baseURL != "" {
				st.BaseURL = cur.baseURL
				if sameBase(cur.baseURL, baseURL) {
					st.State = ConnectedHere
				} else {
					st.State = ConnectedElsewhere
				}
				return st
			}
			st.State = Found
			return st
		}
	}
	if t.binary != "" {
		if _, err := exec.LookPath(t.binary); err == nil {
			st.State = Found
			return st
		}
	}
	if t.dirs != nil {
		for _, d := range t.dirs() {
			if d == "" {
				continue
			}
			if m, _ := filepath.Glob(d); len(m) > 0 {
				st.State = Found
				return st
			}
		}
	}
	return st
}

// CurrentToken is the token the tool's file holds now, or "".
func (t *Tool) CurrentToken() string {
	if t.path == nil {
		return ""
	}
	p, err := t.Path()
	if err != nil {
		return ""
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	cur, err := t.read(data)
	if err != nil {
		return ""
	}
	return cur.token
}

func sameBase(a, b string) bool {
	norm := func(s string) string { return strings.TrimSuffix(strings.TrimRight(s, "/"), "/v1") }
	return norm(a) == norm(b)
}

// record is what the state folder keeps about one connected tool, beside
// the original file's bytes (NAME.orig).
type record struct {
	Path    string      `json:"path,omitempty"`
	Existed bool        `json:"existed"`
	Mode    fs.FileMode `json:"mode,omitempty"`
	Token   string      `json:"token,omitempty"` // the token connect made
	// Wrote is the SHA-256 of the bytes connect last wrote: Undo puts the
	// original back only over exactly those, never over later changes.
	Wrote string `json:"wrote,omitempty"`
	// Dirs are the folders connect made for the file, deepest first;
	// Undo removes them again when they are empty.
	Dirs []string `json:"dirs,omitempty"`
}

func recordPath(stateDir, tool string) string { return filepath.Join(stateDir, tool+".json") }
func origPath(stateDir, tool string) string   { return filepath.Join(stateDir, tool+".orig") }

func loadRecord(stateDir, tool string) (*record, error) {
	data, err := os.ReadFile(recordPath(stateDir, tool))
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("read %s: %w", recordPath(stateDir, tool), err)
	}
	return &r, nil
}

// RecordedToken is the name of the token connect made for the tool, if
// the tool is connected and one was made.
func (t *Tool) RecordedToken(stateDir string) string {
	r, err := loadRecord(stateDir, t.Name)
	if err != nil {
		return ""
	}
	return r.Token
}

// Plan is a change ready to be shown and applied.
type Plan struct {
	Tool *Tool
	// Path is the file that changes; empty for tools kept in the IDE.
	Path string
	// Diff shows the change (the token masked); empty when nothing changes.
	Diff string
	// Changed is false when the file already says all this: connecting
	// twice changes nothing.
	Changed bool
	// Create is true when the file does not exist yet.
	Create bool

	stateDir string
	target   Target
	old, new []byte
	mode     fs.FileMode
}

// Plan works out the change that points the tool at tg. stateDir is where
// the originals are kept for Undo. A file that does not parse is an error
// that names its line, and nothing will be written.
func (t *Tool) Plan(stateDir string, tg Target) (*Plan, error) {
	p := &Plan{Tool: t, stateDir: stateDir, target: tg, mode: 0o600}
	if t.path == nil {
		_, err := loadRecord(stateDir, t.Name)
		p.Changed = err != nil || t.RecordedToken(stateDir) != tg.TokenName
		return p, nil
	}
	path, err := t.Path()
	if err != nil {
		return nil, err
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real // a dotfiles manager's link stays a link
	}
	p.Path = path
	if r, err := loadRecord(stateDir, t.Name); err == nil && r.Path != "" && r.Path != path {
		return nil, fmt.Errorf("%s was connected at %s, and its settings are now at %s: undo that first (gatehouse connect --undo %s), then connect again", t.Title, r.Path, path, t.Name)
	}
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.Create = true
	case err != nil:
		return nil, err
	default:
		if fi, err := os.Stat(path); err == nil {
			p.mode = fi.Mode().Perm()
		}
	}
	if !p.Create {
		if err := t.fileErr(old); err != nil {
			return nil, fmt.Errorf("%s is not changed: %w", path, err)
		}
	}
	updated, err := t.edit(old, tg)
	if err != nil {
		return nil, fmt.Errorf("%s is not changed: %w", path, err)
	}
	updated = sameLineEnds(old, updated)
	if err := t.fileErr(updated); err != nil {
		return nil, fmt.Errorf("%s is not changed: the edit would break it (%w); please report this", path, err)
	}
	if err := t.verify(old, updated, tg); err != nil {
		return nil, fmt.Errorf("%s is not changed: %w; its shape is one connect cannot edit safely, so please point %s at %s by hand", path, err, t.Title, tg.v1())
	}
	p.old, p.new = old, updated
	p.Changed = p.Create || !bytes.Equal(old, updated)
	if p.Changed {
		p.Diff = Diff(path, hideSecrets(mask(old, tg.Token)), hideSecrets(mask(updated, tg.Token)))
	}
	return p, nil
}

// sameLineEnds gives the lines connect added the file's line ends: a file
// written with CRLF throughout keeps CRLF throughout.
func sameLineEnds(old, updated []byte) []byte {
	crlf := bytes.Count(old, []byte("\r\n"))
	if crlf == 0 || crlf != bytes.Count(old, []byte("\n")) {
		return updated
	}
	lf := bytes.ReplaceAll(updated, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n"))
}

// mask hides a token in text shown to people.
func mask(data []byte, token string) []byte {
	if token == "" || token == Placeholder || len(token) < 12 {
		return data
	}
	return bytes.ReplaceAll(data, []byte(token), []byte(token[:9]+"…"))
}

// ErrChanged means the file changed after the change was planned (and
// shown): nothing was written.
var ErrChanged = errors.New("the file changed since the change was shown; nothing was written: connect again to see the change anew")

// Apply writes the change: the original into the state folder (only the
// first time, so that Undo goes back to the file as it was before any
// connect), then the new file atomically with the old file's permissions,
// then the record. A file that changed since Plan is not written; a step
// that fails undoes the ones before it.
func (p *Plan) Apply() error {
	r, recErr := loadRecord(p.stateDir, p.Tool.Name)
	if !p.Changed {
		if recErr == nil && r.Token != p.target.TokenName { // a new token for the same file (Zed)
			r.Token = p.target.TokenName
			return p.saveRecord(r)
		}
		return nil
	}
	if p.Path != "" {
		now, err := os.ReadFile(p.Path)
		switch {
		case p.Create && !errors.Is(err, fs.ErrNotExist), !p.Create && (err != nil || !bytes.Equal(now, p.old)):
			return fmt.Errorf("%s: %w", p.Path, ErrChanged)
		}
	}
	if err := os.MkdirAll(p.stateDir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", p.stateDir, err)
	}
	first := recErr != nil
	if first {
		r = &record{Path: p.Path, Existed: !p.Create, Mode: p.mode}
		if p.Path != "" {
			r.Dirs = missingDirs(filepath.Dir(p.Path))
		}
		if r.Existed {
			if err := writeAtomic(origPath(p.stateDir, p.Tool.Name), p.old, 0o600); err != nil {
				return err
			}
		}
	}
	forget := func() {
		if first {
			_ = os.Remove(origPath(p.stateDir, p.Tool.Name))
		}
	}
	if p.Path != "" {
		if err := writeAtomic(p.Path, p.new, p.mode); err != nil {
			forget()
			return err
		}
		r.Wrote = hash(p.new)
	}
	r.Token = p.target.TokenName
	if err := p.saveRecord(r); err != nil {
		if p.Path != "" { // without its record the change could not be undone: take it back
			if p.Create {
				_ = os.Remove(p.Path)
			} else {
				_ = writeAtomic(p.Path, p.old, p.mode)
			}
		}
		forget()
		return err
	}
	return nil
}

func (p *Plan) saveRecord(r *record) error {
	if err := os.MkdirAll(p.stateDir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", p.stateDir, err)
	}
	data, _ := json.MarshalIndent(r, "", "  ")
	return writeAtomic(recordPath(p.stateDir, p.Tool.Name), data, 0o600)
}

func hash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Undone says what Undo did.
type Undone struct {
	Path    string // the file put back or removed; empty for IDE tools
	Removed bool   // connect had created the file, so it is gone now
	Token   string // the token connect had made: the caller revokes it
}

// ErrNotConnected means Undo found nothing connect did for this tool.
var ErrNotConnected = errors.New("not connected by gatehouse")

// Undo puts back the file as it was before the first connect (or removes
// it when connect created it) and forgets the tool.
func (t *Tool) Undo(stateDir string) (Undone, error) {
	r, err := loadRecord(stateDir, t.Name)
	if errors.Is(err, fs.ErrNotExist) {
		return Undone{}, fmt.Errorf("%s: %w; nothing to undo", t.Name, ErrNotConnected)
	}
	if err != nil {
		return Undone{}, err
	}
	u := Undone{Path: r.Path, Token: r.Token}
	if r.Path != "" && r.Wrote != "" {
		now, err := os.ReadFile(r.Path)
		if err == nil && hash(now) != r.Wrote || err != nil && !errors.Is(err, fs.ErrNotExist) {
			orig := "connect created it"
			if r.Existed {
				orig = "the file as it was before connect is kept at " + origPath(stateDir, t.Name)
			}
			return Undone{}, fmt.Errorf("%s changed after connect wrote it; to keep those changes, Undo leaves it as it is: remove Gatehouse's settings from it by hand (%s)", r.Path, orig)
		}
	}
	switch {
	case r.Path == "":
	case r.Existed:
		orig, err := os.ReadFile(origPath(stateDir, t.Name))
		if err != nil {
			return Undone{}, fmt.Errorf("the original of %s: %w", r.Path, err)
		}
		if err := writeAtomic(r.Path, orig, r.Mode); err != nil {
			return Undone{}, err
		}
	default:
		if err := os.Remove(r.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return Undone{}, err
		}
		u.Removed = true
		for _, d := range r.Dirs {
			_ = os.Remove(d) // only if empty: whatever the tool put there stays
		}
	}
	_ = os.Remove(origPath(stateDir, t.Name))
	if err := os.Remove(recordPath(stateDir, t.Name)); err != nil {
		return u, err
	}
	return u, nil
}

// missingDirs are dir and those of its parents that do not exist yet,
// deepest first.
func missingDirs(dir string) []string {
	var out []string
	for {
		if _, err := os.Stat(dir); err == nil {
			return out
		}
		out = append(out, dir)
		parent := filepath.Dir(dir)
		if parent == dir {
			return out
		}
		dir = parent
	}
}

// writeAtomic replaces path with data: a temporary file in the same
// folder, synced, then renamed, so a failure leaves the old file.
func writeAtomic(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	err = tmp.Chmod(mode)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// home is the user's home folder ("" if unknown).
func home() string {
	h, _ := os.UserHomeDir()
	return h
}

// xdgConfig is $XDG_CONFIG_HOME or ~/.config: where Zed and opencode keep
// their settings on Linux and macOS alike.
func xdgConfig() string {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return d
	}
	return filepath.Join(home(), ".config")
}

// names lists the tools' names, for messages.
func names() []string {
	var n []string
	for _, t := range Tools() {
		n = append(n, t.Name)
	}
	return slices.Clip(n)
}
