package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-app/gatehouse/keystore"
	"github.com/gatehouse-app/gatehouse/proxy"
)

// errDown makes `gatehouse check` exit 1 after it has printed its tables.
var errDown = errors.New("something is down; see the tables above")

// check runs every pool's health check now, then asks each upstream
// through its route, and prints both as tables.
func (c *cli) check(args []string) error {
	fs, cfgPath := c.flags("check")
	timeout := fs.Duration("timeout", 10*time.Second, "how long each upstream may take to answer")
	if _, err := c.parse(fs, cfgPath, args, 0, "no arguments"); err != nil {
		return err
	}
	cfg, err := proxy.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	f := proxy.NewForwarder(keystore.NewCredentials(c.store), nil, c.log)
	if err := f.Apply(cfg, filepath.Dir(*cfgPath)); err != nil {
		return err
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	f.CheckNow(ctx)

	down := false
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	status := f.Status()
	if status.Direct {
		fmt.Fprintln(c.stdout, "The global direct switch is on: no proxy is used.")
	}
	if len(status.Pools) > 0 {
		fmt.Fprintln(w, "POOL\tSTRATEGY\tMEMBER\tSTATE\tLATENCY\tERROR")
		for _, p := range status.Pools {
			for _, m := range p.Members {
				state := m.State
				if m.URL == p.Selected {
					state += " (selected)"
				}
				if m.URL == p.Pinned {
					state += " (pinned)"
				}
				latency := ""
				if m.State == "up" {
					latency = m.Latency.Round(time.Millisecond).String()
				}
				down = down || m.State == "down"
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Strategy, m.URL, state, latency, m.LastError)
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "UPSTREAM\tROUTE\tREACHABLE")
	for _, u := range f.CheckUpstreams(ctx, *timeout) {
		reach := fmt.Sprintf("yes (HTTP %d)", u.Status)
		if u.Err != nil {
			reach, down = "no: "+u.Err.Error(), true
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", u.Name, u.Route, reach)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if down {
		return errDown
	}
	return nil
}
