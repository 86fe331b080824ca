package setup

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gatehouse-app/gatehouse/keystore"
	"github.com/gatehouse-app/gatehouse/proxy"
)

// Export writes the config and every secret it names into the file out,
// encrypted with passphrase, to move a setup to another machine. missing
// lists the secrets the config names that the keychain lacks.
func (s *Setup) Export(out, passphrase string) (found, missing []string, err error) {
	data, found, missing, err := s.ExportBytes(passphrase)
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(out+".tmp", data, 0o600); err != nil {
		return nil, nil, err
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		os.Remove(out + ".tmp")
		return nil, nil, err
	}
	return found, missing, nil
}

// ExportBytes is the encrypted export itself, made before any file is
// touched: the window asks where to save it only once it exists, so that
// a refused passphrase or a keychain error never empties a chosen file.
func (s *Setup) ExportBytes(passphrase string) (data []byte, found, missing []string, err error) {
	if passphrase == "" {
		return nil, nil, nil, errors.New("the passphrase is empty; choose one to protect the file")
	}
	text, err := os.ReadFile(s.ConfigPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil, fmt.Errorf("nothing to export: there is no config at %s", s.ConfigPath)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	cfg, err := proxy.ParseConfig(s.ConfigPath, text)
	if err != nil {
		return nil, nil, nil, err
	}
	var buf bytes.Buffer
	if found, missing, err = keystore.Export(&buf, text, cfg, s.secrets(), passphrase); err != nil {
		return nil, nil, nil, err
	}
	return buf.Bytes(), found, missing, nil
}

// Imported says what Import changed.
type Imported struct {
	Replaced, Added []string // keychain entries
	ConfigExisted   bool     // the config file was replaced, not made
}

// Import restores an export into this keychain and config. A wrong
// passphrase, a config not valid here, or a failed step changes nothing:
// the keychain is put back when the config cannot be written.
func (s *Setup) Import(file, passphrase string) (*Imported, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := keystore.OpenExport(f, passphrase)
	if err != nil {
		return nil, err
	}
	if _, err := proxy.ParseConfig(s.ConfigPath, []byte(b.Config)); err != nil {
		return nil, fmt.Errorf("the exported config is not valid on this machine (%w); nothing was changed", err)
	}
	_, statErr := os.Stat(s.ConfigPath)
	replaced, added, undo, err := b.Restore(s.secrets())
	if err != nil {
		return nil, err
	}
	err = os.MkdirAll(filepath.Dir(s.ConfigPath), 0o700)
	if err == nil {
		err = proxy.SaveConfigText(s.ConfigPath, []byte(b.Config))
	}
	if err != nil {
		return nil, undo(err)
	}
	return &Imported{Replaced: replaced, Added: added, ConfigExisted: statErr == nil}, nil
}
