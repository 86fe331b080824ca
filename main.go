// Command gatehouse keeps LLM API keys out of IDEs and CLIs: it runs a
// localhost OpenAI-compatible forwarder that injects the real credentials.
// This file only wires: commands and flags, the logger, signals, and the
// proxy package's service.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"

	"github.com/gatehouse-app/gatehouse/proxy"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel()}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cmd := ""
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "":
		err = runDefault(ctx, log, stderr)
	case "serve":
		err = serve(ctx, args, log, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "gatehouse %s (%s, %s %s/%s)\n", version, flavour, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	case "help", "-h", "--help":
		usage(stdout)
	default:
		fmt.Fprintf(stderr, "gatehouse: unknown command %q\n\n", cmd)
		usage(stderr)
		return 2
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "gatehouse:", err)
		return 1
	}
	return 0
}

var errUsage = errors.New("usage")

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: gatehouse [COMMAND]

With no command: the desktop app (window, tray and forwarder).

Commands:
  serve [--config FILE] [--listen ADDR]   run the forwarder alone, headless
  version                                 print the version
  help                                    print this help

The config file is config.toml in the user config folder, unless --config
or GATEHOUSE_CONFIG names another. Clients use http://127.0.0.1:4747/v1.
`)
}

func logLevel() slog.Level {
	if os.Getenv("GATEHOUSE_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// serve runs the forwarder until SIGINT or SIGTERM; SIGHUP reloads the
// config. Each request is logged as one line on stderr.
func serve(ctx context.Context, args []string, log *slog.Logger, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (default: $"+proxy.ConfigEnv+" or config.toml in the user config folder)")
	listen := fs.String("listen", "", "listen address, overriding the config's (loopback only)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage // the flag package has said what is wrong
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gatehouse: serve takes no arguments, got %q; see gatehouse help\n", fs.Args())
		return errUsage
	}
	path := *cfgPath
	if path == "" {
		var err error
		if path, err = proxy.DefaultConfigPath(); err != nil {
			return err
		}
	}

	reqlog := proxy.NewRequestLog(0)
	svc, err := proxy.NewService(path, *listen, proxy.EnvCredentials{}, reqlog, log)
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	sub := reqlog.Subscribe(4096)
	defer sub.Close()
	wg.Go(func() {
		for rec := range sub.C {
			log.LogAttrs(context.Background(), slog.LevelInfo, "request", rec.LogAttrs()...)
		}
	})

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{})
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() {
		for {
			select {
			case <-runCtx.Done():
				return
			case <-hup:
				select {
				case reload <- struct{}{}:
				case <-runCtx.Done():
					return
				}
			}
		}
	})
	return svc.Run(runCtx, reload)
}
