package main

import (
	"bufio"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/gatehouse-app/gatehouse/connect"
	"github.com/gatehouse-app/gatehouse/proxy"
	"github.com/gatehouse-app/gatehouse/setup"
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
	if *list {
		cfg, err := proxy.LoadConfig(*cfgPath)
		if err != nil {
			return err
		}
		return c.connectList(setup.BaseURL(cfg))
	}
	tool, err := connect.Lookup(pos[0])
	if err != nil {
		return err
	}
	if *undo {
		return c.connectUndo(tool, *cfgPath)
	}
	return c.connectTool(tool, *cfgPath, *model, *yes)
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

func (c *cli) connectTool(tool *connect.Tool, cfgPath string, model string, yes bool) error {
	conn, err := setup.PrepareConnect(cfgPath, "", tool, model)
	if err != nil {
		return err
	}
	if conn.Warning != "" {
		fmt.Fprintf(c.stderr, "Warning: %s (pass --model)\n", conn.Warning)
	}
	tg, plan := conn.Target, conn.Plan
	if tool.InIDE() {
		fmt.Fprintf(c.stdout, "%s keeps its settings inside the IDE. Fill in:\n", tool.Title)
		w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		for _, f := range tool.Fields(tg) {
			v := f.Value
			if f.Secret && conn.NewToken == "" && tg.TokenName != "" {
				v = fmt.Sprintf("the token %q, shown when it was made", tg.TokenName)
			}
			fmt.Fprintf(w, "  %s:\t%s\n", f.Label, v)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	} else if !conn.Changed() {
		fmt.Fprintf(c.stdout, "%s already points at Gatehouse (%s): nothing to change.\n", tool.Title, plan.Path)
		return nil
	} else {
		fmt.Fprint(c.stdout, plan.Diff)
		if plan.Changed && !yes && !c.confirm(fmt.Sprintf("Write %s? [y/N] ", plan.Path)) {
			fmt.Fprintln(c.stdout, "Nothing written.")
			return nil
		}
	}
	if err := conn.Apply(); err != nil {
		return err
	}
	if !tool.InIDE() {
		fmt.Fprintf(c.stdout, "Connected %s: %s points at %s. Undo with `gatehouse connect --undo %s`.\n", tool.Title, plan.Path, tg.BaseURL, tool.Name)
	}
	if conn.NewToken != "" {
		fmt.Fprintf(c.stderr, "Made the access token %q for %s.\n", tg.TokenName, tool.Title)
	}
	if tool.Name == "zed" {
		key := "any value, for instance " + connect.Placeholder
		switch {
		case conn.NewToken != "":
			key = "this token (shown only this once): " + tg.Token
		case tg.TokenName != "":
			key = fmt.Sprintf("the token %q, shown when it was made", tg.TokenName)
		}
		fmt.Fprintf(c.stdout, "Zed keeps API keys in the system keychain: in its agent settings, enter as the OpenAI API key %s\n", key)
	}
	return nil
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

func (c *cli) connectUndo(tool *connect.Tool, cfgPath string) error {
	u, err := setup.UndoConnect(cfgPath, tool)
	switch {
	case u.Path == "" && err == nil:
		fmt.Fprintf(c.stdout, "%s keeps its settings inside the IDE: clear them there.\n", tool.Title)
	case u.Removed:
		fmt.Fprintf(c.stdout, "Removed %s, which connect had made.\n", u.Path)
	case u.Path != "":
		fmt.Fprintf(c.stdout, "Put back %s as it was.\n", u.Path)
	}
	if err != nil {
		return err
	}
	if u.Revoked != "" {
		fmt.Fprintf(c.stdout, "Revoked the token %q.\n", u.Revoked)
	}
	return nil
}
