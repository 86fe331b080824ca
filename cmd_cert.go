package main

import (
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-app/gatehouse/keystore"
	"github.com/gatehouse-app/gatehouse/proxy"
)

func (c *cli) cert(args []string) error {
	return c.subcommand("cert", args, map[string]func([]string) error{
		"import": c.certImport, "list": c.certList, "rm": c.certRm,
	})
}

// certImport checks a client certificate, stores it (chain and key) in the
// keychain and switches client_cert on for the upstream.
func (c *cli) certImport(args []string) error {
	fs, cfgPath := c.flags("cert import")
	certFile := fs.String("cert", "", "PEM certificate file (the chain may follow the certificate)")
	keyFile := fs.String("key", "", "PEM private key file")
	p12File := fs.String("p12", "", "PKCS#12 file (.p12, .pfx); its password is read from stdin")
	pos, err := c.parse(fs, cfgPath, args, 1, "UPSTREAM and --cert FILE --key FILE, or --p12 FILE")
	if err != nil {
		return err
	}
	if _, _, err := editConfig(*cfgPath, pos[0]); err != nil {
		return err
	}
	var cc *keystore.ClientCert
	switch {
	case *p12File != "" && *certFile == "" && *keyFile == "":
		data, err := os.ReadFile(*p12File)
		if err != nil {
			return err
		}
		password, err := c.readSecret("Password of "+*p12File+" (input is hidden): ", "", true)
		if err != nil {
			return err
		}
		if cc, err = keystore.ParseClientCertP12(data, password); err != nil {
			return err
		}
	case *p12File == "" && *certFile != "" && *keyFile != "":
		certPEM, err := os.ReadFile(*certFile)
		if err != nil {
			return err
		}
		keyPEM, err := os.ReadFile(*keyFile)
		if err != nil {
			return err
		}
		if cc, err = keystore.ParseClientCertPEM(certPEM, keyPEM); err != nil {
			return err
		}
	default:
		fmt.Fprintln(c.stderr, "gatehouse: cert import takes --cert FILE --key FILE, or --p12 FILE")
		return errUsage
	}
	info, warning, err := c.setup(*cfgPath).ImportCert(pos[0], cc)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Stored the client certificate of upstream %q in the keychain; it is presented to that upstream only.\n  subject  %s\n  issuer   %s\n  expires  %s\n  sha256   %s\n",
		pos[0], info.Subject, info.Issuer, info.NotAfter.Format(time.DateOnly), info.Fingerprint)
	if warning != "" {
		fmt.Fprintln(c.stderr, "gatehouse: warning:", warning)
	}
	return nil
}

func (c *cli) certList(args []string) error {
	fs, cfgPath := c.flags("cert list")
	if _, err := c.parse(fs, cfgPath, args, 0, "no arguments"); err != nil {
		return err
	}
	cfg, err := proxy.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	var unreachable error
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "UPSTREAM\tSUBJECT\tISSUER\tEXPIRES\tSHA-256")
	for _, up := range cfg.Upstreams {
		if !up.ClientCert {
			continue
		}
		cc, err := c.setup(*cfgPath).Cert(up.Name)
		switch {
		case err == nil:
			info := cc.Info()
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", up.Name, info.Subject, info.Issuer, info.NotAfter.Format(time.DateOnly), info.Fingerprint)
		case errors.Is(err, keystore.ErrNotFound):
			fmt.Fprintf(w, "%s\tmissing: import it with gatehouse cert import %s\t\t\t\n", up.Name, up.Name)
		default:
			if errors.Is(err, keystore.ErrUnavailable) {
				unreachable = err
			}
			fmt.Fprintf(w, "%s\t%v\t\t\t\n", up.Name, err)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return unreachable
}

func (c *cli) certRm(args []string) error {
	fs, cfgPath := c.flags("cert rm")
	pos, err := c.parse(fs, cfgPath, args, 1, "UPSTREAM")
	if err != nil {
		return err
	}
	if err := c.setup(*cfgPath).RemoveCert(pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Removed the client certificate of upstream %q.\n", pos[0])
	return nil
}
