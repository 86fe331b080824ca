package setup

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-app/gatehouse/keystore"
	"github.com/gatehouse-app/gatehouse/proxy"
)

// Preset fills the upstream form for a provider. Base URLs are each
// provider's OpenAI-compatible (or, for Anthropic, native) endpoint as
// documented by the provider; model patterns are the families it serves,
// for routing by model (edit them freely).
type Preset struct {
	Title   string
	Name    string // the upstream's suggested name
	BaseURL string
	Auth    string
	Models  []string
	// Note, when not empty, says what to change before saving.
	Note string
}

// Presets are the providers the window offers, Custom last.
var Presets = []Preset{
	{Title: "OpenAI", Name: "openai", BaseURL: "https://api.openai.com/v1", Auth: proxy.AuthBearer,
		Models: []string{"gpt-*", "o1*", "o3*", "o4*", "chatgpt-*", "text-embedding-*"}},
	{Title: "Anthropic", Name: "anthropic", BaseURL: "https://api.anthropic.com/v1", Auth: proxy.AuthXAPIKey,
		Models: []string{"claude-*"}},
	{Title: "Google Gemini (OpenAI endpoint)", Name: "gemini", BaseURL: "https://generativelanguage.googleapis.com/v1beta/openai", Auth: proxy.AuthBearer,
		Models: []string{"gemini-*"}},
	{Title: "DeepSeek", Name: "deepseek", BaseURL: "https://api.deepseek.com/v1", Auth: proxy.AuthBearer,
		Models: []string{"deepseek-*"}},
	{Title: "Zhipu GLM", Name: "glm", BaseURL: "https://open.bigmodel.cn/api/paas/v4", Auth: proxy.AuthBearer,
		Models: []string{"glm-*"}},
	{Title: "Moonshot (Kimi)", Name: "moonshot", BaseURL: "https://api.moonshot.cn/v1", Auth: proxy.AuthBearer,
		Models: []string{"moonshot-*", "kimi-*"}},
	{Title: "Qwen (DashScope compatible mode)", Name: "qwen", BaseURL: "https://dashscope.aliyuncs.com/compatible-mode/v1", Auth: proxy.AuthBearer,
		Models: []string{"qwen-*", "qwq-*"}},
	{Title: "OpenRouter", Name: "openrouter", BaseURL: "https://openrouter.ai/api/v1", Auth: proxy.AuthBearer,
		Models: []string{"*/*"}},
	{Title: "Groq", Name: "groq", BaseURL: "https://api.groq.com/openai/v1", Auth: proxy.AuthBearer,
		Models: []string{"llama-*", "llama3-*", "gemma2-*", "qwen/*", "openai/gpt-oss-*"}},
	{Title: "Mistral", Name: "mistral", BaseURL: "https://api.mistral.ai/v1", Auth: proxy.AuthBearer,
		Models: []string{"mistral-*", "codestral-*", "devstral-*", "magistral-*", "ministral-*", "pixtral-*", "open-mistral-*"}},
	{Title: "xAI", Name: "xai", BaseURL: "https://api.x.ai/v1", Auth: proxy.AuthBearer,
		Models: []string{"grok-*"}},
	{Title: "Ollama on another machine", Name: "ollama", BaseURL: "http://192.168.1.20:11434/v1", Auth: proxy.AuthNone,
		Models: []string{"llama*", "qwen*", "gemma*", "mistral*", "phi*"}, Note: "Put the address of the machine that runs Ollama in the base URL; it needs no key."},
	{Title: "LM Studio on another machine", Name: "lmstudio", BaseURL: "http://192.168.1.20:1234/v1", Auth: proxy.AuthNone,
		Models: []string{"local-*"}, Note: "Put the address of the machine that runs LM Studio's server in the base URL, and the models it serves in the patterns; it needs no key."},
	{Title: "Custom", Auth: proxy.AuthBearer},
}

// SaveUpstream adds an upstream (oldName "") or changes the one named
// oldName: its base URL, auth scheme, model patterns and route (its keys,
// certificate and other settings stay). A key, when given, is stored in
// the keychain first under label "default" (or the next free label) and
// named in the same config edit; if the edit fails, the keychain is put
// back. The name of an existing upstream does not change: its keys are
// stored under it.
func (s *Setup) SaveUpstream(oldName string, up proxy.Upstream, key string) error {
	up.Name = strings.TrimSpace(up.Name)
	up.BaseURL = strings.TrimSpace(up.BaseURL)
	if oldName != "" {
		up.Name = oldName
	}
	change := func(label, day string) func(*proxy.Config) error {
		return func(c *proxy.Config) error {
			var dst *proxy.Upstream
			if oldName == "" {
				if c.Upstream(up.Name) != nil {
					return fmt.Errorf("an upstream named %q exists; choose another name", up.Name)
				}
				c.Upstreams = append(c.Upstreams, proxy.Upstream{Name: up.Name})
				dst = &c.Upstreams[len(c.Upstreams)-1]
			} else if dst = c.Upstream(oldName); dst == nil {
				return fmt.Errorf("no upstream named %q in %s", oldName, s.ConfigPath)
			}
			dst.BaseURL, dst.Auth, dst.Models, dst.Via = up.BaseURL, up.Auth, up.Models, up.Via
			if label != "" {
				nameKey(dst, label, day)
			}
			return nil
		}
	}
	if key == "" {
		return s.Edit(change("", ""))
	}
	cfg, err := s.Load()
	if err != nil {
		return err
	}
	label := NextKeyLabel(nil)
	if cur := cfg.Upstream(up.Name); cur != nil {
		label = NextKeyLabel(cur.Keys)
	}
	// Checked before the keychain is touched, so that a bad name or URL
	// leaves nothing behind.
	check := cfg.Clone()
	if err := change("", "")(check); err != nil {
		return err
	}
	if err := check.Check(s.ConfigPath); err != nil {
		return err
	}
	return s.withSecret(keystore.KeyName(up.Name, label), key, func() error {
		return s.Edit(change(label, s.now().Format(time.DateOnly)))
	})
}

// NextKeyLabel is the label a new key of an upstream with keys gets:
// "default", else the first free of "key2", "key3", ….
func NextKeyLabel(keys []string) string {
	label := "default"
	for i := 2; slices.Contains(keys, label); i++ {
		label = fmt.Sprintf("key%d", i)
	}
	return label
}

// RemoveUpstream takes an upstream out of the config, then deletes its keys
// and client certificate from the keychain (the config never names a
// secret that is gone).
func (s *Setup) RemoveUpstream(name string) error {
	var gone *proxy.Upstream
	err := s.Edit(func(c *proxy.Config) error {
		i := slices.IndexFunc(c.Upstreams, func(u proxy.Upstream) bool { return u.Name == name })
		if i < 0 {
			return fmt.Errorf("no upstream named %q in %s", name, s.ConfigPath)
		}
		u := c.Upstreams[i]
		gone = &u
		c.Upstreams = slices.Delete(c.Upstreams, i, i+1)
		return nil
	})
	if err != nil {
		return err
	}
	names := []string{keystore.CertName(name)}
	for _, l := range gone.Keys {
		names = append(names, keystore.KeyName(name, l))
	}
	var left []string
	for _, n := range names {
		if err := s.secrets().Delete(n); err != nil && !errors.Is(err, keystore.ErrNotFound) {
			left = append(left, n)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("upstream %q is removed, but these keychain entries could not be deleted: %s", name, strings.Join(left, ", "))
	}
	return nil
}

// SavePool adds a pool (oldName "") or changes the one named oldName:
// members, strategy, check URL, interval, timeout and tolerance. A pin or
// a disabled mark stays while its member does. password, when given, is
// stored first for every member whose URL names a user, and put back if
// the config edit fails.
func (s *Setup) SavePool(oldName string, p proxy.Pool, password string) error {
	p.Name = strings.TrimSpace(p.Name)
	save := func() error { return s.savePool(oldName, p) }
	if password == "" {
		return save()
	}
	for _, m := range p.Proxies {
		if userHost, err := ProxyUserHost(m); err == nil {
			next := save
			save = func() error { return s.withSecret(keystore.ProxyName(userHost), password, next) }
		}
	}
	return save()
}

func (s *Setup) savePool(oldName string, p proxy.Pool) error {
	return s.Edit(func(c *proxy.Config) error {
		if oldName == "" {
			if c.Pool(p.Name) != nil {
				return fmt.Errorf("a pool named %q exists; choose another name", p.Name)
			}
			c.Pools = append(c.Pools, p)
			return nil
		}
		dst := c.Pool(oldName)
		if dst == nil {
			return fmt.Errorf("no pool named %q in %s", oldName, s.ConfigPath)
		}
		dst.Proxies, dst.Strategy, dst.CheckURL = p.Proxies, p.Strategy, p.CheckURL
		dst.Interval, dst.Timeout, dst.Tolerance = p.Interval, p.Timeout, p.Tolerance
		if !slices.Contains(dst.Proxies, dst.Pinned) {
			dst.Pinned = ""
		}
		dst.Disabled = slices.DeleteFunc(dst.Disabled, func(m string) bool { return !slices.Contains(dst.Proxies, m) })
		return nil
	})
}

// RemovePool takes a pool out of the config; an upstream that routes
// through it must be given another route first (the error says which).
func (s *Setup) RemovePool(name string) error {
	return s.Edit(func(c *proxy.Config) error {
		i := slices.IndexFunc(c.Pools, func(p proxy.Pool) bool { return p.Name == name })
		if i < 0 {
			return fmt.Errorf("no pool named %q in %s", name, s.ConfigPath)
		}
		for _, u := range c.Upstreams {
			if u.Via == "pool:"+name {
				return fmt.Errorf("upstream %q routes through pool %q; give it another route first", u.Name, name)
			}
		}
		c.Pools = slices.Delete(c.Pools, i, i+1)
		return nil
	})
}

// SetListen changes where the forwarder listens. An address other than
// loopback shares it with the network, which needs access tokens. A new
// address must be free now: a port another program holds is refused
// before anything is saved, so the forwarder is never moved onto it.
func (s *Setup) SetListen(addr string) error {
	addr = strings.TrimSpace(addr)
	return s.Edit(func(c *proxy.Config) error {
		if addr != c.Listen {
			check := c.Clone()
			check.Listen = addr
			if err := check.Check(s.ConfigPath); err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return proxy.NewFieldError("listen", fmt.Sprintf("%s cannot be listened on now (%v); another program may hold the port: choose another one", addr, err))
			}
			ln.Close()
		}
		c.Listen = addr
		return nil
	})
}
