// Command gatehouse keeps LLM API keys out of IDEs and CLIs: it runs a
// localhost OpenAI-compatible forwarder that injects the real credentials.
// The files of package main only wire: commands and flags, the logger,
// signals, and the proxy and keystore packages that do the work.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gatehouse-app/gatehouse/keystore"
	"github.com/gatehouse-app/gatehouse/proxy"
	"github.com/gatehouse-app/gatehouse/setup"
)

// hiddenFlag starts the desktop app in the tray, its window closed: what
// launch at login runs (setup.SetAutostart, the Windows installer's Run
// value). Starting Gatehouse again opens the window.
const hiddenFlag = setup.HiddenFlag

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// openStore opens the keychain; tests put a memory store here.
var openStore = func() keystore.Store { return keystore.Keyring{} }

func main() {
	setProcs()
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// setProcs runs Gatehouse's goroutines on one processor (GOMAXPROCS=1)
// unless the GOMAXPROCS environment variable asks for more. It is set here
// because a dependency (bild, under Fyne) sets GOMAXPROCS to every CPU in
// its init, overriding the environment variable.
//
// One is Gatehouse's default because a forwarder for one user's IDE and
// CLIs spends its time handing a request between goroutines (the server's
// connection, the transport's read and write loops), not computing: with
// a second processor idle, each hand-off wakes a sleeping thread on
// another core. Under wrk with one connection, one processor took
// 20-25% less CPU per request and 9-16 µs less at p50, and forwarded
// 9,200-10,900 requests a second at concurrency 32 on a 2-vCPU machine
// (README, `gatehouse serve` and Performance, the eighth look).
func setProcs() {
	// Parsed as the runtime parses it; unset, 0 or anything else is one.
	if n, err := strconv.ParseInt(os.Getenv("GOMAXPROCS"), 10, 32); err == nil && n > 0 {
		runtime.GOMAXPROCS(int(n))
		return
	}
	runtime.GOMAXPROCS(1)
}

// cli is what every command gets.
type cli struct {
	ctx    context.Context
	log    *slog.Logger
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	store  keystore.Store
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &cli{
		ctx:    ctx,
		log:    slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel()})),
		stdin:  stdin,
		stdout: stdout,
		stderr: stderr,
		store:  openStore(),
	}
	commands := map[string]func([]string) error{
		"serve": c.serve,
		"key":   c.key,
		"token": c.token,
		"cert":  c.cert,
		"check": c.check,

		"connect": c.connect,

		"proxy-password": c.proxyPassword,
		"export":         c.export,
		"import":         c.import_,
		"forget-secrets": c.forgetSecrets,
		"version": func([]string) error {
			fmt.Fprintf(stdout, "gatehouse %s (%s, %s %s/%s)\n", version, flavour, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
		"help": func([]string) error { usage(stdout); return nil },
	}
	commands["--version"], commands["-h"], commands["--help"] = commands["version"], commands["help"], commands["help"]

	var err error
	if len(args) == 0 || len(args) == 1 && args[0] == hiddenFlag {
		err = c.runDefault(len(args) == 1)
	} else if cmd, ok := commands[args[0]]; ok {
		err = cmd(args[1:])
	} else {
		fmt.Fprintf(stderr, "gatehouse: unknown command %q\n\n", args[0])
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

// errUsage means the command has already said what was wrong with how it
// was called; the exit status is 2.
var errUsage = errors.New("usage")

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: gatehouse [COMMAND]

With no command: the desktop app (window, tray and forwarder); with
--hidden it starts in the tray with its window closed (launch at login).

Commands:
  serve [--listen ADDR]               run the forwarder alone, headless
  key add UPSTREAM [--label L]        store a key (read from stdin) in the keychain
  key list [--listen ADDR]            show every key: upstream, label, source, masked, state
  key rm UPSTREAM LABEL               delete a key
  key enable UPSTREAM LABEL [--listen ADDR]
                                      use a rejected key again in the running forwarder
  cert import UPSTREAM --cert F --key F | --p12 F
                                      store a client certificate (mTLS) in the keychain
  cert list                           show subject, issuer, expiry and fingerprint
  cert rm UPSTREAM                    delete a client certificate
  proxy-password set URL              store the password of a proxy URL with a user (stdin)
  proxy-password rm URL               delete it
  token add NAME                      make a local access token (printed once)
  token list                          show the tokens' names
  token rm NAME                       delete a token
  connect TOOL [--model M] [--yes]    point a tool at this Gatehouse: shows the change, asks, writes
                                      (claude-code, codex, continue, zed, aider, opencode; cline,
                                      roo-code, jetbrains print the fields to fill in the IDE)
  connect --undo TOOL                 put the tool's file back as it was, revoke its token
  connect --list                      show each tool: found, connected here or elsewhere, not found
  check [--timeout D]                 check every proxy and upstream now; exit 1 if one is down
  export --out FILE                   write the config and every secret, encrypted with a passphrase
  import FILE                         restore an export into this machine's keychain and config
  forget-secrets --yes                delete every secret Gatehouse keeps in the keychain (the
                                      Windows uninstaller offers it); the config stays
  version                             print the version
  help                                print this help

Every command takes --config FILE; the default is config.toml in the user
config folder, or GATEHOUSE_CONFIG. Clients use http://127.0.0.1:4747/v1.
`)
}

func logLevel() slog.Level {
	if os.Getenv("GATEHOUSE_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// flags makes a command's flag set with the --config flag every command
// has; parse it with c.parse.
func (c *cli) flags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	return fs, fs.String("config", "", "config file (default: $"+proxy.ConfigEnv+" or config.toml in the user config folder)")
}

// parse parses args, which must leave exactly nargs positional arguments
// (described by what, for the error), and resolves the config path.
func (c *cli) parse(fs *flag.FlagSet, cfgPath *string, args []string, nargs int, what string) ([]string, error) {
	// Flags may come before, between or after the positional arguments.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage // the flag package has said what is wrong
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	if len(pos) != nargs {
		fmt.Fprintf(c.stderr, "gatehouse: %s takes %s; see gatehouse help\n", fs.Name(), what)
		return nil, errUsage
	}
	if *cfgPath == "" {
		p, err := proxy.DefaultConfigPath()
		if err != nil {
			return nil, err
		}
		*cfgPath = p
	}
	return pos, nil
}

// settleTokenEnv, when set, is the token with which GET
// /gatehouse/status?settle=1 (sent by make soak) may drop idle connections
// and collect garbage first.
const settleTokenEnv = "GATEHOUSE_SETTLE_TOKEN"

// logPause is how long serve's request log writer rests after a write.
const logPause = 20 * time.Millisecond

// serve runs the forwarder until SIGINT or SIGTERM; SIGHUP reloads the
// config. Each request is logged as one line on stderr.
func (c *cli) serve(args []string) error {
	fs, cfgPath := c.flags("serve")
	listen := fs.String("listen", "", "listen address, overriding the config's (loopback only)")
	if _, err := c.parse(fs, cfgPath, args, 0, "no arguments"); err != nil {
		return err
	}

	if path := os.Getenv("GATEHOUSE_CPUPROFILE"); path != "" {
		// For profiling a running forwarder (make bench PROFILE=1).
		if f, err := os.Create(path); err == nil {
			_ = pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	reqlog := proxy.NewRequestLog(0)
	svc, err := c.newService(*cfgPath, *listen, reqlog)
	if err != nil {
		return err
	}
	if tok := os.Getenv(settleTokenEnv); tok != "" {
		svc.Forwarder.AllowSettle(tok) // for make soak only
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	sub := reqlog.Subscribe(4096)
	defer sub.Close()
	wg.Go(func() {
		// A line is written as soon as its request ends; then the writer
		// rests for logPause while the next lines queue up, so a busy
		// forwarder writes (and wakes this goroutine) once per pause rather
		// than once per request.
		buf := bufio.NewWriter(c.stderr)
		var line []byte
		for rec := range sub.C {
			line = rec.AppendLogLine(line[:0], rec.Start.Add(rec.Duration)) // stamped when the request ended
			_, _ = buf.Write(line)
			if len(sub.C) == 0 {
				_ = buf.Flush()
				time.Sleep(logPause)
			}
		}
		_ = buf.Flush()
	})

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{})
	runCtx, cancel := context.WithCancel(c.ctx)
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

// newService makes the forwarder's service with the keychain's credentials
// and the usage totals; serve and the desktop app both run one.
func (c *cli) newService(cfgPath, listen string, reqlog *proxy.RequestLog) (*proxy.Service, error) {
	proxy.Version = version
	svc, err := proxy.NewService(cfgPath, listen, keystore.NewCredentials(c.store), reqlog, c.log)
	if err != nil {
		return nil, err
	}
	c.warnIfKeychainUnreachable(svc.Forwarder.Config())
	if path, err := proxy.DefaultCachePath(); err == nil {
		svc.CachePath = path
	}
	if path, err := proxy.DefaultUsagePath(); err == nil {
		book, err := proxy.OpenUsageBook(path)
		if err != nil {
			c.log.Warn("usage totals", "err", err)
		}
		svc.Usage = book
	}
	return svc, nil
}

// warnIfKeychainUnreachable tells at start when keys are configured but the
// keychain cannot be read: the forwarder still runs with key_env keys.
func (c *cli) warnIfKeychainUnreachable(cfg *proxy.Config) {
	for _, up := range cfg.Upstreams {
		if len(up.Keys) == 0 {
			continue
		}
		_, err := keystore.Secrets{Store: c.store}.Get(keystore.KeyName(up.Name, up.Keys[0]))
		if errors.Is(err, keystore.ErrUnavailable) {
			c.log.Warn("keys in the keychain cannot be used; upstreams with key_env still work", "err", err)
		}
		return
	}
}
